"""Finding the organization a delivery belongs to: its `org_id`, or the owner of its `integration_id`."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.core.errors import UnknownOrganization
from service.database.pool import translate_unavailable

__all__ = ["OrgResolver"]


class OrgResolver:
    """Remembers what it has found: organizations and integrations are only ever added, never changed
    (an organization with events cannot be deleted: the log references it)."""

    def __init__(self, pool: asyncpg.Pool, *, max_cached: int = 10_000) -> None:
        self._pool = pool
        self._max_cached = max_cached
        self._orgs: set[UUID] = set()
        self._integrations: dict[UUID, UUID] = {}

    def known(self, org_id: UUID | None, integration_id: UUID | None) -> UUID | None:
        """What `resolve` would return, when what it needs is remembered already; None otherwise (then
        ask `resolve`, which also gives the reasons for a refusal). Every webhook after an
        organization's first comes this way, without the coroutines of an await."""
        if integration_id is not None:
            owner = self._integrations.get(integration_id)
            return owner if owner is not None and org_id in (None, owner) else None
        return org_id if org_id in self._orgs else None

    async def resolve(self, org_id: UUID | None, integration_id: UUID | None) -> UUID:
        if org_id is None and integration_id is None:
            raise UnknownOrganization("no organization context: give org_id or integration_id")
        if integration_id is not None:
            owner = await self._integration_owner(integration_id)
            if org_id is not None and org_id != owner:
                raise UnknownOrganization("org_id and integration_id name different organizations")
            return owner
        assert org_id is not None
        if not await self._org_exists(org_id):
            raise UnknownOrganization("unknown org_id")
        return org_id

    async def _org_exists(self, org_id: UUID) -> bool:
        if org_id in self._orgs:
            return True
        found = await translate_unavailable(
            lambda: self._pool.fetchval("SELECT true FROM organizations WHERE id = $1", org_id)
        )
        if found:
            self._make_room()
            self._orgs.add(org_id)
        return bool(found)

    async def _integration_owner(self, integration_id: UUID) -> UUID:
        owner: UUID | None = self._integrations.get(integration_id)
        if owner is None:
            owner = await translate_unavailable(
                lambda: self._pool.fetchval("SELECT org_id FROM integrations WHERE id = $1", integration_id)
            )
            if owner is None:
                raise UnknownOrganization("unknown integration_id")
            self._make_room()
            self._integrations[integration_id] = owner
        return owner

    def _make_room(self) -> None:
        # Bounded: past the limit, start over rather than grow with every id ever seen.
        if len(self._orgs) + len(self._integrations) >= self._max_cached:
            self._orgs.clear()
            self._integrations.clear()
