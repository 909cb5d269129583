"""What surrounds a projection's table, carried over to the table a rebuild swaps in.

`CREATE TABLE ... (LIKE ... INCLUDING ALL)` copies columns, defaults, constraints, indexes, statistics
and column comments, and nothing else (DESIGN-NOTES.md, section 8). The swap reads the rest from the
catalog, in its own transaction, and makes it again on the new table: owner, grants (table and column,
with grant options), comments, storage parameters, replica identity, row level security (both flags and
every policy), membership in publications (Supabase Realtime among them), operator triggers and rules;
and the views that read the table, dropped before the old table goes and made again after. Readers and
subscribers see the change at the swap's commit, all of it or none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from projections.rebuild.dependent_views import DependentViews, dependent_views
from projections.rebuild.relation_sql import TABLE_GRANTS, ResetAcl, Step, relation_statements

__all__ = ["Surroundings", "carry_over", "read_surroundings"]

_STORAGE = """
    SELECT CASE WHEN c.reloptions IS NOT NULL
                THEN format('ALTER TABLE %s SET (%s)', c.oid::regclass, array_to_string(c.reloptions, ', '))
           END
             AS table_options,
           CASE WHEN t.reloptions IS NOT NULL
                THEN format('ALTER TABLE %s SET (%s)', c.oid::regclass,
                            (SELECT string_agg('toast.' || o, ', ') FROM unnest(t.reloptions) o)) END
             AS toast_options,
           CASE c.relreplident
                WHEN 'n' THEN format('ALTER TABLE %s REPLICA IDENTITY NOTHING', c.oid::regclass)
                WHEN 'f' THEN format('ALTER TABLE %s REPLICA IDENTITY FULL', c.oid::regclass)
                WHEN 'i' THEN format('ALTER TABLE %s REPLICA IDENTITY USING INDEX %I', c.oid::regclass,
                                     (SELECT x.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
                                      WHERE i.indrelid = c.oid AND i.indisreplident))
           END AS replica_identity,
           CASE WHEN c.relrowsecurity
                THEN format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', c.oid::regclass) END
             AS row_security,
           CASE WHEN c.relforcerowsecurity
                THEN format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', c.oid::regclass) END AS forced
    FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE c.oid = $1
"""

_POLICIES = """
    SELECT format('CREATE POLICY %I ON %s AS %s FOR %s TO %s%s%s', p.polname, p.polrelid::regclass,
                  CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
                  CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                  (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC'
                                          ELSE quote_ident(pg_get_userbyid(r)) END, ', ')
                   FROM unnest(p.polroles) r),
                  ' USING (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                  ' WITH CHECK (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')') AS definition,
           format('COMMENT ON POLICY %I ON %s IS %L', p.polname, p.polrelid::regclass,
                  obj_description(p.oid, 'pg_policy')) AS comment
    FROM pg_policy p WHERE p.polrelid = $1 ORDER BY p.polname
"""

# Publications that name the table (those FOR ALL TABLES or FOR TABLES IN SCHEMA take the new table in
# by themselves), with the column list and row filter each gave it.
_PUBLICATIONS = """
    SELECT format('ALTER PUBLICATION %I ADD TABLE %s%s%s', p.pubname, r.prrelid::regclass,
                  (SELECT ' (' || string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) || ')'
                   FROM pg_attribute a WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs::int2[])),
                  ' WHERE (' || pg_get_expr(r.prqual, r.prrelid) || ')')
    FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
    WHERE r.prrelid = $1 ORDER BY p.pubname
"""


@dataclass(frozen=True)
class Surroundings:
    views: DependentViews
    table: list[Step]
    """What the new table is given once it has the name, before the views are made again."""


async def read_surroundings(conn: asyncpg.Connection, table: str) -> Surroundings:
    """Read what surrounds the live `table` (a quoted name), inside the swap's transaction."""
    oid = await conn.fetchval("SELECT to_regclass($1)::oid", table)
    search_path = await conn.fetchval("SELECT current_setting('search_path')")
    # With no schema on the search path every name the catalog gives back is schema-qualified, and
    # means the same when it is run again; set_config(..., true) lasts until the transaction ends.
    await conn.execute("SELECT set_config('search_path', '', true)")
    try:
        return await _read(conn, oid)
    finally:
        await conn.execute("SELECT set_config('search_path', $1, true)", search_path)


async def _read(conn: asyncpg.Connection, oid: int) -> Surroundings:
    steps = await relation_statements(conn, oid, "TABLE")
    storage = await conn.fetchrow(_STORAGE, oid)
    steps += [statement for statement in storage.values() if statement is not None]
    for policy in await conn.fetch(_POLICIES, oid):
        steps += [policy["definition"], policy["comment"]]
    steps += [row[0] for row in await conn.fetch(_PUBLICATIONS, oid)]
    return Surroundings(await dependent_views(conn, oid), steps)


async def carry_over(
    conn: asyncpg.Connection, surroundings: Surroundings, swap: Callable[[], Awaitable[None]]
) -> None:
    """Drop the views on the table, `swap` the new table in under the name, and give it and the views
    back what they had, on `conn` inside the swap's transaction."""
    if surroundings.views.drop is not None:
        await conn.execute(surroundings.views.drop)
    await swap()
    for step in [*surroundings.table, *surroundings.views.create]:
        if isinstance(step, ResetAcl):
            await _reset_acl(conn, step)
        else:
            await conn.execute(step)


async def _reset_acl(conn: asyncpg.Connection, reset: ResetAcl) -> None:
    """Revoke every privilege on the relation from whoever holds one, owner included: the grants that
    follow are then all it has."""
    oid = await conn.fetchval("SELECT to_regclass($1)::oid", reset.relation)
    holders = await conn.fetch(
        """
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
        FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1
        """,
        oid,
    )
    if not holders:
        return
    await conn.execute(f"REVOKE ALL ON {reset.relation} FROM {', '.join(row[0] for row in holders)} CASCADE")
    if reset.to_default:
        for row in await conn.fetch(TABLE_GRANTS, oid, True):
            await conn.execute(row[0])
