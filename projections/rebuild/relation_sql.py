"""The statements that give a relation (a table or a view) what an operator set on it: owner, grants,
comments, triggers and rules, read from the catalog as SQL text.

Each query runs while `search_path` is empty (see surroundings.py), so that every name in a definition
it returns (a trigger's table and function, a rule's tables) is schema-qualified and means the same
thing when it is run again.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

__all__ = ["TABLE_GRANTS", "ResetAcl", "Step", "relation_statements"]


@dataclass(frozen=True)
class ResetAcl:
    """A step that is not a statement: revoke every privilege `relation` has now, whoever holds it. A
    relation made afresh may already carry grants (the creating role's default privileges), which cannot
    be known until it exists. With `to_default`, the relation had the default privileges (no ACL): one
    made afresh without an ACL is left alone, and one with an ACL gets the owner's default privileges."""

    relation: str
    to_default: bool


Step = str | ResetAcl
"""A statement to run, or a ResetAcl."""

_GRANTEE = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END"

_OWNER_AND_COMMENT = """
    SELECT format('ALTER %s %s OWNER TO %I', $2::text, c.oid::regclass, pg_get_userbyid(c.relowner)) AS owner,
           c.oid::regclass::text AS name, c.relacl IS NULL AS default_acl,
           format('COMMENT ON %s %s IS %L', $2::text, c.oid::regclass, obj_description(c.oid, 'pg_class'))
             AS comment
    FROM pg_class c WHERE c.oid = $1
"""

# Grants as they stand (with $2, the owner's default ones instead), grouped by grantee and grant option.
# The grantor becomes the role that runs the statement (the owner).
TABLE_GRANTS = f"""
    SELECT format('GRANT %s ON %s TO %s%s', string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type),
                  c.oid::regclass, {_GRANTEE}, CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_class c, aclexplode(CASE WHEN $2 THEN acldefault('r', c.relowner) ELSE c.relacl END) a
    WHERE c.oid = $1
    GROUP BY c.oid, a.grantee, a.is_grantable
"""

_COLUMN_GRANTS = f"""
    SELECT format('GRANT %s (%I) ON %s TO %s%s', string_agg(a.privilege_type, ', ' ORDER BY a.privilege_type),
                  t.attname, t.attrelid::regclass, {_GRANTEE},
                  CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
    FROM pg_attribute t, aclexplode(t.attacl) a
    WHERE t.attrelid = $1 AND t.attnum > 0 AND NOT t.attisdropped
    GROUP BY t.attrelid, t.attname, a.grantee, a.is_grantable
"""

# Every column's comment, none included: a comment dropped on the live table while the shadow was
# filled must not come back from the shadow's copy.
_COLUMN_COMMENTS = """
    SELECT format('COMMENT ON COLUMN %s.%I IS %L', t.attrelid::regclass, t.attname,
                  col_description(t.attrelid, t.attnum))
    FROM pg_attribute t WHERE t.attrelid = $1 AND t.attnum > 0 AND NOT t.attisdropped ORDER BY t.attnum
"""

# Operator triggers only: internal ones (foreign keys' and the like) come with their constraint.
_TRIGGERS = """
    SELECT pg_get_triggerdef(g.oid) AS definition,
           CASE WHEN g.tgenabled <> 'O'
                THEN format('ALTER TABLE %s %s TRIGGER %I', g.tgrelid::regclass,
                            CASE g.tgenabled WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA'
                                             ELSE 'ENABLE ALWAYS' END,
                            g.tgname)
           END AS enabled,
           format('COMMENT ON TRIGGER %I ON %s IS %L', g.tgname, g.tgrelid::regclass,
                  obj_description(g.oid, 'pg_trigger')) AS comment
    FROM pg_trigger g WHERE g.tgrelid = $1 AND NOT g.tgisinternal ORDER BY g.tgname
"""

# Rules an operator added; a view's own "_RETURN" rule is its definition.
_RULES = """
    SELECT pg_get_ruledef(r.oid) AS definition,
           format('COMMENT ON RULE %I ON %s IS %L', r.rulename, r.ev_class::regclass,
                  obj_description(r.oid, 'pg_rewrite')) AS comment
    FROM pg_rewrite r WHERE r.ev_class = $1 AND r.rulename <> '_RETURN' ORDER BY r.rulename
"""


async def relation_statements(conn: asyncpg.Connection, oid: int, kind: str) -> list[Step]:
    """What re-creates on a relation made afresh, under the same name, the owner, grants (table and
    column, with grant options), comments (its own and its columns'), triggers (and whether each is
    enabled) and rules of relation `oid`. `kind` is TABLE or VIEW."""
    head = await conn.fetchrow(_OWNER_AND_COMMENT, oid, kind)
    steps: list[Step] = [head["owner"], ResetAcl(head["name"], head["default_acl"])]
    if not head["default_acl"]:
        steps += [row[0] for row in await conn.fetch(TABLE_GRANTS, oid, False)]
    steps += [row[0] for row in await conn.fetch(_COLUMN_GRANTS, oid)]
    steps.append(head["comment"])
    steps += [row[0] for row in await conn.fetch(_COLUMN_COMMENTS, oid)]
    for trigger in await conn.fetch(_TRIGGERS, oid):
        steps += [
            trigger["definition"],
            *([trigger["enabled"]] if trigger["enabled"] else []),
            trigger["comment"],
        ]
    for rule in await conn.fetch(_RULES, oid):
        steps += [rule["definition"], rule["comment"]]
    return steps
