"""What a rebuild cannot carry over, found before it does any work and said in one line.

The swap drops the old table and the views on it, and makes the views again (surroundings.py). Anything
else that depends on the table or on those views would stop the drop at the very end, after the whole
replay: a materialized view (re-creating it would mean filling it again, inside the swap, while the
live projector waits), a foreign key that references the table, another table's policy or column that
uses it, a function whose body names it. And the views can be made again only by a role that may own
them, as the publications can be extended only by their owner.
"""

from __future__ import annotations

import asyncpg

from projections.rebuild.dependent_views import reading_relations

__all__ = ["RebuildRefused", "refuse_what_cannot_be_carried_over"]


class RebuildRefused(Exception):
    """Something around the table cannot be carried over by a rebuild; the message says what, on one line."""


# Normal dependencies on the table, its row type, or one of its views, other than those the swap makes
# again: the relations' own rules (a view's definition), policies, triggers, constraints, defaults and
# places in publications (a row filter depends on the columns it reads).
_OTHER_DEPENDENTS = """
    SELECT DISTINCT CASE WHEN d.classid = 'pg_rewrite'::regclass
                         THEN pg_describe_object('pg_class'::regclass,
                                                 (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid), 0)
                         ELSE pg_describe_object(d.classid, d.objid, d.objsubid) END AS what
    FROM pg_depend d
    WHERE d.deptype = 'n'
      AND ((d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY ($1::oid[]))
           OR (d.refclassid = 'pg_type'::regclass
               AND d.refobjid IN (SELECT reltype FROM pg_class WHERE oid = ANY ($1::oid[]))))
      AND NOT coalesce(CASE d.classid
          WHEN 'pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_rewrite WHERE oid = d.objid)
          WHEN 'pg_policy'::regclass THEN (SELECT polrelid FROM pg_policy WHERE oid = d.objid)
          WHEN 'pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_trigger WHERE oid = d.objid)
          WHEN 'pg_constraint'::regclass
              THEN (SELECT conrelid FROM pg_constraint WHERE oid = d.objid AND confrelid = 0)
          WHEN 'pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_attrdef WHERE oid = d.objid)
          WHEN 'pg_publication_rel'::regclass
              THEN (SELECT prrelid FROM pg_publication_rel WHERE oid = d.objid)
          WHEN 'pg_class'::regclass THEN d.objid
          END = ANY ($1::oid[]), false)
    ORDER BY what
"""

# Relations the rebuild's role could not make again as they are: it must be able to act as their owner.
_NOT_OWNABLE = """
    SELECT format('%s is owned by %I, and the rebuild''s role %I is not a member of it',
                  pg_describe_object('pg_class'::regclass, c.oid, 0), pg_get_userbyid(c.relowner),
                  current_user)
    FROM pg_class c WHERE c.oid = ANY ($1::oid[]) AND NOT pg_has_role(current_user, c.relowner, 'MEMBER')
    UNION ALL
    SELECT format('publication %I is owned by %I, and the rebuild''s role %I is not a member of it',
                  p.pubname, pg_get_userbyid(p.pubowner), current_user)
    FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
    WHERE r.prrelid = $2 AND NOT pg_has_role(current_user, p.pubowner, 'MEMBER')
"""


async def refuse_what_cannot_be_carried_over(conn: asyncpg.Connection, table: str) -> None:
    """Raise RebuildRefused when the rebuild of `table` (a quoted name) could not carry over all that
    depends on it."""
    oid = await conn.fetchval("SELECT to_regclass($1)::oid", table)
    readers = await reading_relations(conn, oid)
    views = [row["oid"] for row in readers if row["relkind"] == "v"]
    # Dependents of a materialized view are beside the point: the view itself is refused.
    refused = [row["what"] for row in await conn.fetch(_OTHER_DEPENDENTS, [oid, *views])]
    refused += [row[0] for row in await conn.fetch(_NOT_OWNABLE, [oid, *views], oid)]
    if refused:
        raise RebuildRefused(
            f"{table.strip(chr(34))} cannot be rebuilt: {'; '.join(refused)}. A rebuild carries over the "
            "views on the table but not these: drop them (make them again after), or rebuild as a role "
            "that may own them. Nothing was changed"
        )
