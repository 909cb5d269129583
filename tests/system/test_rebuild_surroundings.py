"""A rebuild keeps what surrounds the table: owner, grants, comments, storage parameters, replica
identity, row level security and its policies, publications, triggers, rules, and the views that read
it (which then read the new table); what it cannot carry over is refused before any work."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from projections.rebuild.blockers import RebuildRefused
from projections.rebuild.rebuild import SHADOW_SUFFIX, rebuild
from projections.registry import PROJECTIONS
from tests.support.cli import run_cli
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, table_rows


def _call(n: int) -> tuple[str, dict]:
    return ("calls", {**SEED["calls"], "call_id": f"call-{n}", "duration": n})


@pytest.fixture
async def roles(conn: asyncpg.Connection) -> AsyncIterator[dict[str, str]]:
    """Three roles of this test (roles are cluster-wide, hence the random names)."""
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"mc_{role}_{suffix}" for role in ("owner", "reader", "granter")}
    for name in names.values():
        await conn.execute(f'CREATE ROLE "{name}"')
    yield names
    for name in names.values():
        await conn.execute(f'DROP OWNED BY "{name}" CASCADE; DROP ROLE "{name}"')


_RELATION = """
    SELECT c.relkind, pg_get_userbyid(c.relowner) AS owner, c.reloptions, t.reloptions AS toast_options,
           c.relreplident, c.relrowsecurity, c.relforcerowsecurity,
           obj_description(c.oid, 'pg_class') AS comment,
           (SELECT x.relname FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
            WHERE i.indrelid = c.oid AND i.indisreplident) AS replica_index,
           (SELECT array_agg(format('%s %s %s %s', pg_get_userbyid(a.grantor), pg_get_userbyid(a.grantee),
                                    a.privilege_type, a.is_grantable) ORDER BY 1)
            FROM aclexplode(c.relacl) a) AS grants,
           (SELECT array_agg(format('%s %s %s %s %s', t.attname, pg_get_userbyid(a.grantor),
                                    pg_get_userbyid(a.grantee), a.privilege_type, a.is_grantable) ORDER BY 1)
            FROM pg_attribute t, aclexplode(t.attacl) a WHERE t.attrelid = c.oid) AS column_grants,
           (SELECT array_agg(format('%s: %s', t.attname, col_description(c.oid, t.attnum)) ORDER BY t.attnum)
            FROM pg_attribute t WHERE t.attrelid = c.oid AND t.attnum > 0
              AND col_description(c.oid, t.attnum) IS NOT NULL) AS column_comments,
           (SELECT array_agg(format('%s %s', tg.tgenabled, pg_get_triggerdef(tg.oid)) ORDER BY tg.tgname)
            FROM pg_trigger tg WHERE tg.tgrelid = c.oid AND NOT tg.tgisinternal) AS triggers,
           (SELECT array_agg(pg_get_ruledef(r.oid) ORDER BY r.rulename)
            FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN') AS rules,
           CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END AS definition,
           (SELECT array_agg(format('%s %s', t.attname, pg_get_expr(d.adbin, d.adrelid)))
            FROM pg_attrdef d JOIN pg_attribute t ON t.attrelid = d.adrelid AND t.attnum = d.adnum
            WHERE d.adrelid = c.oid AND c.relkind = 'v') AS view_defaults
    FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
    WHERE c.oid = to_regclass($1)
"""


async def _surroundings(conn: asyncpg.Connection, table: str, views: list[str]) -> dict[str, Any]:
    """Everything around `table` and its `views` that a rebuild must keep, by name (never by oid)."""
    policies = await conn.fetch(
        """
        SELECT p.polname, p.polpermissive, p.polcmd,
               (SELECT array_agg(CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END ORDER BY 1)
                FROM unnest(p.polroles) r) AS roles,
               pg_get_expr(p.polqual, p.polrelid) AS qual, pg_get_expr(p.polwithcheck, p.polrelid) AS checks,
               obj_description(p.oid, 'pg_policy') AS comment
        FROM pg_policy p WHERE p.polrelid = to_regclass($1) ORDER BY p.polname
        """,
        table,
    )
    publications = await conn.fetch(
        "SELECT pubname, attnames, rowfilter FROM pg_publication_tables WHERE tablename = $1 "
        "ORDER BY pubname",
        table,
    )
    return {
        "table": dict(await conn.fetchrow(_RELATION, table)),
        "policies": [dict(row) for row in policies],
        "publications": [dict(row) for row in publications],
        "views": {view: dict(await conn.fetchrow(_RELATION, view)) for view in views},
    }


async def _reads_table_oid(conn: asyncpg.Connection, view: str) -> list[int]:
    """The oids of the tables `view` reads directly."""
    return [
        row[0]
        for row in await conn.fetch(
            """
            SELECT DISTINCT d.refobjid FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            JOIN pg_class c ON c.oid = d.refobjid AND c.relkind = 'r'
            WHERE r.ev_class = to_regclass($1) AND d.refclassid = 'pg_class'::regclass
            """,
            view,
        )
    ]


async def test_a_rebuild_keeps_everything_around_the_table_and_the_views_read_the_new_one(
    db_url, pool, conn, org_id, roles
):
    owner, reader, granter = roles["owner"], roles["reader"], roles["granter"]
    await append_payloads(conn, org_id, [_call(n) for n in range(5)])
    await catch_up(pool)
    await conn.execute(
        f"""
        ALTER TABLE calls OWNER TO "{owner}";
        GRANT SELECT ON calls TO "{reader}";
        GRANT SELECT, UPDATE ON calls TO "{granter}" WITH GRANT OPTION;
        GRANT UPDATE (status) ON calls TO "{reader}";
        GRANT INSERT (call_id, status) ON calls TO "{granter}" WITH GRANT OPTION;
        COMMENT ON TABLE calls IS 'calls, one row per call';
        COMMENT ON COLUMN calls.status IS 'as MightyCall said it';
        ALTER TABLE calls SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.05);
        ALTER TABLE calls SET (toast.autovacuum_enabled = false);
        ALTER TABLE calls REPLICA IDENTITY USING INDEX calls_org_id_call_id_key;
        ALTER TABLE calls ENABLE ROW LEVEL SECURITY;
        ALTER TABLE calls FORCE ROW LEVEL SECURITY;
        CREATE POLICY own_org ON calls FOR SELECT TO "{reader}"
            USING (org_id = nullif(current_setting('app.org_id', true), '')::uuid);
        CREATE POLICY no_long_calls ON calls AS RESTRICTIVE FOR UPDATE TO "{granter}", PUBLIC
            USING (duration < 3600) WITH CHECK (duration < 7200);
        COMMENT ON POLICY own_org ON calls IS 'one organization each';
        CREATE PUBLICATION calls_all FOR TABLE calls;
        CREATE PUBLICATION calls_some FOR TABLE calls (id, org_id, call_id, status)
            WHERE (status IS NOT NULL) WITH (publish = 'insert');
        CREATE FUNCTION calls_unchanged() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
        CREATE TRIGGER calls_audit BEFORE UPDATE ON calls FOR EACH ROW EXECUTE FUNCTION calls_unchanged();
        CREATE TRIGGER calls_replica AFTER INSERT ON calls FOR EACH ROW EXECUTE FUNCTION calls_unchanged();
        ALTER TABLE calls ENABLE REPLICA TRIGGER calls_replica;
        COMMENT ON TRIGGER calls_audit ON calls IS 'audited';
        CREATE RULE calls_kept AS ON DELETE TO calls WHERE old.duration > 1000 DO INSTEAD NOTHING;
        CREATE VIEW calls_safe WITH (security_barrier = true, security_invoker = true)
            AS SELECT id, org_id, call_id, status, duration FROM calls WHERE duration >= 0;
        CREATE VIEW calls_short AS SELECT * FROM calls_safe WHERE duration < 60 WITH CASCADED CHECK OPTION;
        CREATE SCHEMA reporting;
        CREATE VIEW reporting.calls_per_org AS
            SELECT s.org_id, count(*) AS calls FROM calls_short s JOIN public.calls c USING (id) GROUP BY 1;
        ALTER VIEW calls_short OWNER TO "{owner}";
        GRANT SELECT ON calls_safe TO "{owner}";
        ALTER VIEW calls_short ALTER COLUMN status SET DEFAULT 'new';
        GRANT SELECT ON calls_short TO "{reader}";
        GRANT SELECT (org_id) ON reporting.calls_per_org TO "{granter}" WITH GRANT OPTION;
        COMMENT ON VIEW calls_short IS 'the short ones';
        COMMENT ON COLUMN calls_safe.status IS 'as MightyCall said it, again';
        CREATE FUNCTION calls_short_insert() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
        CREATE TRIGGER calls_short_instead INSTEAD OF DELETE ON calls_short
            FOR EACH ROW EXECUTE FUNCTION calls_short_insert();
        """
    )
    views = ["calls_safe", "calls_short", "reporting.calls_per_org"]
    before = await _surroundings(conn, "calls", views)
    table_oid = await conn.fetchval("SELECT 'calls'::regclass::oid")
    await append_payloads(conn, org_id, [_call(n) for n in range(5, 8)])

    await rebuild(db_url, PROJECTIONS["calls"], region=REGION)

    assert await conn.fetchval("SELECT 'calls'::regclass::oid") != table_oid
    after = await _surroundings(conn, "calls", views)
    for part in ("table", "policies", "publications"):
        assert after[part] == before[part], part
    for view in views:
        for field, value in before["views"][view].items():
            assert after["views"][view][field] == value, (view, field)
    # Every option and grant above is there: the comparison is not one of empty sets.
    assert before["table"]["reloptions"] == ["fillfactor=70", "autovacuum_vacuum_scale_factor=0.05"]
    assert len(before["policies"]) == 2 and len(before["publications"]) == 2
    assert before["views"]["calls_short"]["reloptions"] == ["check_option=cascaded"]
    assert len(before["table"]["triggers"]) == 2 and before["views"]["calls_short"]["triggers"]
    # The views read the new table, and see the rows it has now.
    new_oid = await conn.fetchval("SELECT 'calls'::regclass::oid")
    assert await _reads_table_oid(conn, "calls_safe") == [new_oid]
    assert await _reads_table_oid(conn, "reporting.calls_per_org") == [new_oid]
    assert await conn.fetchval("SELECT count(*) FROM calls_safe") == 8
    assert await conn.fetchval("SELECT sum(calls) FROM reporting.calls_per_org") == 8
    assert not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"calls{SHADOW_SUFFIX}")


_SUPABASE = """
    DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') THEN
            CREATE ROLE authenticated NOLOGIN;
        END IF;
    END $$;
    CREATE SCHEMA auth;
    CREATE FUNCTION auth.org_id() RETURNS uuid LANGUAGE sql STABLE
        AS $f$ SELECT nullif(current_setting('request.jwt.claims', true)::json ->> 'org_id', '')::uuid $f$;
    GRANT USAGE ON SCHEMA auth TO authenticated;
    GRANT SELECT ON calls TO authenticated;
    ALTER TABLE calls ENABLE ROW LEVEL SECURITY;
    CREATE POLICY "members read their organization's calls" ON calls FOR SELECT TO authenticated
        USING (org_id = auth.org_id());
    CREATE PUBLICATION supabase_realtime FOR TABLE calls;
"""
_DASHBOARD = """
    CREATE VIEW calls_dashboard WITH (security_invoker = on) AS SELECT org_id, call_id, duration FROM calls;
    GRANT SELECT ON calls_dashboard TO authenticated;
"""


async def _seen_as_member(conn: asyncpg.Connection, org: uuid.UUID, relation: str) -> list[str]:
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE authenticated")
        await conn.execute("SELECT set_config('request.jwt.claims', $1, true)", f'{{"org_id": "{org}"}}')
        return [row[0] for row in await conn.fetch(f"SELECT call_id FROM {relation} ORDER BY call_id")]


@pytest.mark.parametrize("dashboard", [False, True], ids=["table", "table-and-view"])
async def test_a_supabase_set_up_keeps_its_policy_its_realtime_publication_and_its_view(
    db_url, pool, conn, org_id, dashboard
):
    other = uuid.uuid4()
    await conn.execute("INSERT INTO organizations (id, name) VALUES ($1, 'Other')", other)
    await append_payloads(conn, org_id, [_call(1), _call(2)])
    await append_payloads(conn, other, [_call(3)])
    await catch_up(pool)
    await conn.execute(_SUPABASE + (_DASHBOARD if dashboard else ""))
    try:
        await append_payloads(conn, other, [_call(4)])

        code, _, err = await run_cli(db_url, "rebuild", "calls")

        assert code == 0, err
        assert await _seen_as_member(conn, org_id, "calls") == ["call-1", "call-2"]
        assert await _seen_as_member(conn, other, "calls") == ["call-3", "call-4"]
        if dashboard:
            assert await _seen_as_member(conn, other, "calls_dashboard") == ["call-3", "call-4"]
        assert await conn.fetchval("SELECT relrowsecurity FROM pg_class WHERE oid = 'calls'::regclass")
        assert await conn.fetchval(
            "SELECT array_agg(tablename::text) FROM pg_publication_tables WHERE pubname = 'supabase_realtime'"
        ) == ["calls"]
    finally:
        await conn.execute("DROP OWNED BY authenticated")


async def test_a_view_on_the_table_no_longer_stops_a_rebuild(db_url, pool, conn, org_id):
    await append_payloads(conn, org_id, [_call(n) for n in range(3)])
    await catch_up(pool)
    await conn.execute("CREATE VIEW recent_calls AS SELECT call_id, call_date FROM calls")
    await append_payloads(conn, org_id, [_call(3)])

    code, _, err = await run_cli(db_url, "rebuild", "calls")

    assert code == 0, err
    assert "DependentObjectsStillExist" not in err
    assert await conn.fetchval("SELECT count(*) FROM recent_calls") == 4


@pytest.mark.parametrize(
    ("set_up", "named"),
    [
        (
            "CREATE MATERIALIZED VIEW calls_daily AS SELECT org_id, count(*) FROM calls GROUP BY 1",
            "materialized view calls_daily",
        ),
        (
            "CREATE VIEW calls_plain AS SELECT * FROM calls;"
            "CREATE MATERIALIZED VIEW calls_frozen AS SELECT * FROM calls_plain",
            "materialized view calls_frozen",
        ),
        (
            "CREATE TABLE call_notes (call uuid REFERENCES calls (id), note text)",
            "constraint call_notes_call_fkey on table call_notes",
        ),
    ],
    ids=["materialized-view", "materialized-view-on-a-view", "foreign-key"],
)
async def test_what_a_rebuild_cannot_carry_over_is_refused_in_one_line_before_any_work(
    db_url, pool, conn, org_id, set_up, named
):
    await append_payloads(conn, org_id, [_call(1)])
    await catch_up(pool)
    await conn.execute(set_up)
    oid = await conn.fetchval("SELECT 'calls'::regclass::oid")
    checkpoint = await conn.fetchrow("SELECT * FROM projection_checkpoints WHERE name = 'calls'")
    rows = await table_rows(conn, "calls")

    code, _, err = await run_cli(db_url, "rebuild", "calls")

    assert code == 1
    assert err.splitlines() == [err.rstrip("\n")]
    assert err.startswith(f"mightycall-ingest: calls cannot be rebuilt: {named}")
    assert err.rstrip().endswith("Nothing was changed")
    assert await conn.fetchval("SELECT 'calls'::regclass::oid") == oid
    assert not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"calls{SHADOW_SUFFIX}")
    assert await conn.fetchrow("SELECT * FROM projection_checkpoints WHERE name = 'calls'") == checkpoint
    assert await table_rows(conn, "calls") == rows
    with pytest.raises(RebuildRefused):
        await rebuild(db_url, PROJECTIONS["calls"], region=REGION)
