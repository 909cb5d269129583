"""The README's "Changing a projection's schema", walked for real: an alembic migration adds a column,
the projection (a new version) fills it, `projections status` says a rebuild is due, and the rebuild
fills it for history while every other column stays as it was."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from alembic import command
from projections import calls
from projections.model import Event, Key, Row
from projections.rebuild.rebuild import rebuild
from projections.registry import PROJECTIONS
from projections.status import projection_statuses
from service.core.phones import PhoneBook
from tests.support.payloads import SEED
from tests.support.projecting import REGION, append_payloads, catch_up, table_rows

ROOT = Path(__file__).resolve().parents[2]

MIGRATION = '''"""calls.caller_initials

Revision ID: 9999
Revises: {head}
"""

from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE calls ADD COLUMN caller_initials text")


def downgrade() -> None:
    op.execute("ALTER TABLE calls DROP COLUMN caller_initials")
'''


def _with_initials(row: Row | None, event: Event, key: Key, phones: PhoneBook) -> Row | None:
    new = calls.apply(row, event, key, phones)
    if new is not None:
        name = new["caller_name"] or ""
        new["caller_initials"] = "".join(word[0] for word in name.split()) or None
    return new


CALLS_V2 = dataclasses.replace(
    calls.PROJECTION,
    version=calls.PROJECTION.version + 1,
    table=dataclasses.replace(calls.TABLE, columns={**calls.TABLE.columns, "caller_initials": "text"}),
    apply=_with_initials,
)


def _migrate_with_the_new_step(tmp_path: Path, db_url: str) -> None:
    scripts = tmp_path / "alembic"
    shutil.copytree(ROOT / "alembic", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    config = Config()
    config.set_main_option("script_location", str(scripts))
    head = ScriptDirectory.from_config(config).get_current_head()
    (scripts / "versions" / "9999_caller_initials.py").write_text(MIGRATION.format(head=head))
    config.attributes["database_url"] = db_url
    command.upgrade(config, "head")


async def test_a_new_column_is_filled_for_new_events_and_by_a_rebuild_for_history(
    tmp_path, db_url, pool, conn, org_id, monkeypatch
):
    history = [
        ("calls", {**SEED["calls"], "call_id": f"old-{n}", "caller_name": f"Ada Lovelace {n}"})
        for n in range(3)
    ]
    await append_payloads(conn, org_id, history)
    await catch_up(pool)
    before = {row["call_id"]: row for row in await table_rows(conn, "calls")}

    _migrate_with_the_new_step(tmp_path, db_url)
    monkeypatch.setitem(PROJECTIONS, "calls", CALLS_V2)
    [status] = [s for s in await projection_statuses(conn) if s.name == "calls"]
    assert (status.version, status.table_version, status.rebuild_due) == (
        calls.PROJECTION.version + 1,
        calls.PROJECTION.version,
        True,
    )

    await append_payloads(
        conn, org_id, [("calls", {**SEED["calls"], "call_id": "new", "caller_name": "Grace Hopper"})]
    )
    await catch_up(pool, projections=[CALLS_V2])
    rows = {row["call_id"]: row for row in await table_rows(conn, "calls")}
    assert rows["new"]["caller_initials"] == "GH"
    assert {rows[f"old-{n}"]["caller_initials"] for n in range(3)} == {None}

    await rebuild(db_url, CALLS_V2, region=REGION)

    rows = {row["call_id"]: row for row in await table_rows(conn, "calls")}
    assert [rows[f"old-{n}"]["caller_initials"] for n in range(3)] == ["AL0", "AL1", "AL2"]
    assert rows["new"]["caller_initials"] == "GH"
    for call_id, old in before.items():
        assert {k: v for k, v in rows[call_id].items() if k != "caller_initials"} == old
    [status] = [s for s in await projection_statuses(conn) if s.name == "calls"]
    assert (status.table_version, status.rebuild_due, status.lag) == (CALLS_V2.version, False, 0)
