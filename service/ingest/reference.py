"""Reference data kept by operators: organizations, their integrations and their phone numbers."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from service.core.phones import to_e164

__all__ = ["ReferenceDataError", "add_integration", "add_organization", "import_phone_numbers"]


class ReferenceDataError(Exception):
    """A request the reference data cannot satisfy, in words for the operator."""


async def add_organization(conn: asyncpg.Connection, name: str, org_id: UUID | None = None) -> UUID:
    org_id = org_id or uuid.uuid4()
    if not name.strip() or len(name.strip()) > 200:
        raise ReferenceDataError("the name must be 1 to 200 characters")
    try:
        await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, $2)", org_id, name.strip())
    except asyncpg.UniqueViolationError:
        raise ReferenceDataError(f"organization {org_id} already exists") from None
    return org_id


async def add_integration(conn: asyncpg.Connection, org_id: UUID, integration_id: UUID | None = None) -> UUID:
    integration_id = integration_id or uuid.uuid4()
    try:
        await conn.execute("INSERT INTO integrations (id, org_id) VALUES ($1, $2)", integration_id, org_id)
    except asyncpg.ForeignKeyViolationError:
        raise ReferenceDataError(f"no organization {org_id}") from None
    except asyncpg.UniqueViolationError:
        raise ReferenceDataError(f"integration {integration_id} already exists") from None
    return integration_id


async def import_phone_numbers(
    conn: asyncpg.Connection, org_id: UUID, numbers: Sequence[str], *, region: str
) -> int:
    """Adds the numbers the organization does not have yet, all in one transaction; returns how many.
    A number it has in another spelling (the same E.164 form) counts as present."""
    async with conn.transaction():
        if not await conn.fetchval("SELECT true FROM organizations WHERE id = $1", org_id):
            raise ReferenceDataError(f"no organization {org_id}")
        added = await conn.fetchval(
            """
            WITH added AS (
                INSERT INTO phone_numbers (org_id, phone_number, e164)
                SELECT $1, number, e164 FROM unnest($2::text[], $3::text[]) AS n (number, e164)
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT count(*) FROM added
            """,
            org_id,
            list(numbers),
            [to_e164(number, region) for number in numbers],
        )
    return int(added)
