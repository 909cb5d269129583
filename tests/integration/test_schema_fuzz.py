"""Schemathesis against the app's own OpenAPI schema (/schema/openapi.json), in-process over ASGI with a
real database: no operation may answer 5xx, whatever it is sent, and a refused request appends nothing.

The served schema describes the paths but not what the handlers read by hand (they take the raw
request, so that the exact bytes can be kept): the webhooks' bodies and the audit API's query
parameters. The test adds those to what it loaded, from the service's own types and names, so that
schemathesis generates bodies and parameters, valid ones and (negative mode) invalid ones."""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from service.app import create_app
from service.audit.queries import MAX_LIMIT
from service.core.config import Settings
from service.core.payloads import KINDS
from tests.support.hostile import ALL_TOKEN, ORG_TOKEN, assert_safe
from tests.support.http import SECRET
from tests.support.payloads import PATHS

EXAMPLES = 15
"""Per operation, in the fuzzing phase; 15 operations in all."""

_FILTERS: list[dict[str, Any]] = [
    {"name": "kind", "schema": {"type": "string", "enum": list(KINDS)}},
    {"name": "event_type", "schema": {"type": "string"}},
    {"name": "org_id", "schema": {"type": "string", "format": "uuid"}},
    {"name": "external_id", "schema": {"type": "string"}},
    {"name": "since", "schema": {"type": "string", "format": "date-time"}},
    {"name": "until", "schema": {"type": "string", "format": "date-time"}},
]
_PAGING: list[dict[str, Any]] = [
    {"name": "after", "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}},
    {"name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
]
QUERY_PARAMETERS: dict[str, list[dict[str, Any]]] = {
    "/audit/events": _FILTERS + _PAGING,
    "/audit/export": _FILTERS,
    "/audit/rejected": _FILTERS[:1] + _FILTERS[4:6] + _PAGING,
    "/audit/trace": [
        {
            "name": "table",
            "required": True,
            "schema": {"type": "string", "enum": ["calls", "mightycall_recordings"]},
        },
        {"name": "key", "required": True, "schema": {"type": "string", "minLength": 1}},
        {"name": "org_id", "required": True, "schema": {"type": "string", "format": "uuid"}},
    ],
}


def described(served: dict[str, Any], org_id: uuid.UUID) -> dict[str, Any]:
    """The served schema with the bodies and query parameters the handlers read by hand."""
    schema = msgspec.json.decode(msgspec.json.encode(served))  # a deep copy
    payload_types = [payload_type for payload_type, _ in KINDS.values()]
    _, components = msgspec.json.schema_components(payload_types, ref_template="#/components/schemas/{name}")
    for payload_type, prefix in KINDS.values():
        component = components[payload_type.__name__]
        # Valid bodies name the organization that exists and an event of the endpoint's kind; negative
        # mode breaks these as it breaks the rest.
        component["properties"]["org_id"] = {"type": "string", "enum": [str(org_id)]}
        component["properties"]["event"] = {
            "type": "string",
            "pattern": f"^{prefix.replace('.', '[.]')}[a-z_]{{1,20}}$",
        }
        component.setdefault("required", []).append("org_id")
    schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
    for kind, (payload_type, _) in KINDS.items():
        schema["paths"][PATHS[kind]]["post"]["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{payload_type.__name__}"}}
            },
        }
    for path, parameters in QUERY_PARAMETERS.items():
        schema["paths"][path]["get"]["parameters"] = [
            {"in": "query", "required": False, **parameter} for parameter in parameters
        ]
    return schema


@pytest.fixture
def pg(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


def log_counts(pg: psycopg.Connection[Any]) -> tuple[int, int]:
    row = pg.execute(
        "SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM rejected_deliveries)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@pytest.fixture
def api_schema(settings: Settings, db_url: str, org_id: uuid.UUID) -> Iterator[Any]:
    configured = dataclasses.replace(
        settings, audit_tokens=((ALL_TOKEN, None), (ORG_TOKEN, org_id)), run_projector=False
    )
    app = create_app(configured, db_url)
    try:
        served = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
        operations = {(op.ok().method, op.ok().path) for op in served.get_all_operations()}
        # 4 webhooks, 9 audit endpoints, health, ready, ready/projections, metrics
        assert len(operations) == 17, operations
        schema = schemathesis.openapi.from_dict(described(served.raw_schema, org_id))
        schema.app = app
        schema.location = "/schema/openapi.json"
        yield schema
    finally:
        # The app's lifespan (its pool) runs in schemathesis' own thread: end it before the database goes.
        asgi.shutdown_lifespans()


def test_no_operation_answers_5xx_and_refusals_append_nothing(
    api_schema: Any, pg: psycopg.Connection[Any]
) -> None:
    # Driven here rather than by schemathesis' pytest plugin: its lazy schemas (the only kind that can
    # come from a fixture, so from a per-test database) read `request.node._nodeid`, gone in pytest 9.
    ran: Counter[str] = Counter()
    for result in api_schema.get_all_operations():
        operation = result.ok()
        fuzz(operation, GenerationMode.POSITIVE, pg, ran)
        # Negative cases break a parameter or the body: there must be one (not so for /health, /verify...).
        if len(operation.path_parameters) or len(operation.query) or len(operation.body):
            fuzz(operation, GenerationMode.NEGATIVE, pg, ran)
    print(*sorted(ran.items()), sep="\n")  # with -s: the cases per operation, mode and answer
    assert len({label.split(" ")[1] for label in ran}) == 17
    for path in PATHS.values():  # valid bodies were generated, and accepted
        assert ran[f"POST {path} positive 202"] > 0, path


def fuzz(operation: Any, mode: GenerationMode, pg: psycopg.Connection[Any], ran: Counter[str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(mode))
    def one_case(case: Any) -> None:
        status = check(case, pg)
        ran[f"{operation.method.upper()} {operation.path} {mode.value} {status}"] += 1

    one_case()


def check(case: Any, pg: psycopg.Connection[Any]) -> int:
    webhook = case.operation.path.startswith("/functions/")
    token = SECRET if webhook else ALL_TOKEN
    before = log_counts(pg)

    response = case.call(headers={"Authorization": f"Bearer {token}"})

    case.validate_response(response, checks=[not_a_server_error])
    assert_safe(response.status_code, response.text if response.status_code >= 400 else "")
    events, rejected = log_counts(pg)
    if not webhook:
        assert (events, rejected) == before  # the audit API only reads
    elif response.status_code == 202:
        assert (events, rejected) == (before[0] + 1, before[1])
    elif response.status_code == 200:
        assert (events, rejected) == before  # a duplicate
    else:
        assert response.status_code in (400, 413), response.text
        assert (events, rejected) == (before[0], before[1] + 1)  # refused, and recorded as such
    return int(response.status_code)
