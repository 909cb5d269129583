"""The views that read a table, directly or through other views, and the statements that re-create
each one as it is: definition and options (security_barrier, security_invoker, check_option), owner,
grants, comments, column defaults, triggers and rules.

A view is bound to its table's oid, not to its name: a table swapped in under the same name is not
what the view reads, and the old table cannot be dropped while the view depends on it. So a rebuild
drops the views and makes them again, in the swap's transaction, after the new table has the name.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from projections.rebuild.relation_sql import Step, relation_statements

__all__ = ["DependentViews", "dependent_views", "reading_relations"]

# Relations whose query rewrite rule depends on a relation in $1, and those that depend on them in
# turn; each with its depth (the longest chain to the table), so that each is made after those it reads.
_READERS = """
    WITH RECURSIVE readers(oid, depth) AS (
        SELECT r.ev_class, 1
        FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
        WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
          AND d.refobjid = $1 AND r.ev_class <> $1
        UNION
        SELECT r.ev_class, readers.depth + 1
        FROM readers
        JOIN pg_class v ON v.oid = readers.oid AND v.relkind = 'v'
        JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = readers.oid
                        AND d.classid = 'pg_rewrite'::regclass
        JOIN pg_rewrite r ON r.oid = d.objid AND r.ev_class <> readers.oid
    )
    SELECT readers.oid, c.relkind::text AS relkind, max(readers.depth) AS depth
    FROM readers JOIN pg_class c ON c.oid = readers.oid
    GROUP BY readers.oid, c.relkind ORDER BY depth, readers.oid
"""

_VIEW = """
    SELECT format('CREATE VIEW %s%s AS %s', c.oid::regclass,
                  CASE WHEN c.reloptions IS NULL THEN ''
                       ELSE format(' WITH (%s)', array_to_string(c.reloptions, ', ')) END,
                  pg_get_viewdef(c.oid)) AS definition
    FROM pg_class c WHERE c.oid = $1
"""

_COLUMN_DEFAULTS = """
    SELECT format('ALTER VIEW %s ALTER COLUMN %I SET DEFAULT %s', d.adrelid::regclass, t.attname,
                  pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attrdef d JOIN pg_attribute t ON t.attrelid = d.adrelid AND t.attnum = d.adnum
    WHERE d.adrelid = $1 ORDER BY d.adnum
"""


@dataclass(frozen=True)
class DependentViews:
    drop: str | None
    """One DROP VIEW naming them all (PostgreSQL orders the drops), or None when there are none."""
    create: list[Step]
    """What makes them again, each after the views it reads."""


async def reading_relations(conn: asyncpg.Connection, table_oid: int) -> list[asyncpg.Record]:
    """(oid, relkind, depth) of every view and materialized view that reads the table, through views."""
    return list(await conn.fetch(_READERS, table_oid))


async def dependent_views(conn: asyncpg.Connection, table_oid: int) -> DependentViews:
    """The views on the table (materialized ones are refused before a rebuild starts: rebuild_blockers)."""
    views = [row["oid"] for row in await reading_relations(conn, table_oid) if row["relkind"] == "v"]
    if not views:
        return DependentViews(None, [])
    names = [await conn.fetchval("SELECT $1::oid::regclass::text", oid) for oid in views]
    create: list[Step] = []
    for oid in views:
        create.append(await conn.fetchval(_VIEW, oid))
        create += await relation_statements(conn, oid, "VIEW")
        create += [row[0] for row in await conn.fetch(_COLUMN_DEFAULTS, oid)]
    return DependentViews(f"DROP VIEW {', '.join(names)}", create)
