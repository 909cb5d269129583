"""`GET /metrics` in Prometheus' text format: what arrives, what is refused, how long appends take, how
far each projection is behind.

Counters are per process (Prometheus scrapes each `serve`); the projections' lag is read from the
database at each scrape, so every process reports the same. Labels are kinds, outcomes and projection
names only: never a secret, an organization, or anything from a payload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import asyncpg
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from projections.status import projection_lags
from service.database.pool import is_unavailable

__all__ = ["Metrics", "metrics_handler"]

# An append waits for a group commit: milliseconds normally, up to the database's timeouts when not.
_APPEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _CountedInDatabase:
    """A counter whose count the database holds, because what it counts happens in another process (a
    command, the projector): set from a query at each scrape, so every `serve` reports the same (take
    the max, not the sum)."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self._name, self._documentation, self._labels = name, documentation, labels
        self.counts: dict[tuple[str, ...], int] = {}

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labels)
        for values, count in sorted(self.counts.items()):
            family.add_metric(list(values), count)
        yield family


class Metrics:
    """One registry per app, so that several apps in one process (tests) do not share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "mightycall_deliveries",
            "Webhook deliveries by endpoint kind and outcome (accepted, duplicate, or the refusal's reason).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "mightycall_append_seconds",
            "From a verified delivery queued for the log to its commit (or its failure).",
            buckets=_APPEND_BUCKETS,
            registry=self.registry,
        )
        self.lag_events = Gauge(
            "mightycall_projection_lag_events",
            "Events in the log that the projection has not applied yet.",
            ["projection"],
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "mightycall_projection_lag_seconds",
            "Age of the oldest event the projection has not applied yet (0 when it is caught up).",
            ["projection"],
            registry=self.registry,
        )
        self.stopped = Gauge(
            "mightycall_projection_stopped",
            "1 when the projection stopped on an event it cannot apply.",
            ["projection"],
            registry=self.registry,
        )
        self.rebuilding = Gauge(
            "mightycall_projection_rebuilding",
            "1 while a rebuild's shadow table exists for the projection.",
            ["projection"],
            registry=self.registry,
        )
        self.rebuild_position = Gauge(
            "mightycall_rebuild_position",
            "How far a running rebuild has replayed the log (0 when none is running).",
            ["projection"],
            registry=self.registry,
        )
        self.rebuild_head = Gauge(
            "mightycall_rebuild_head",
            "The log position a running rebuild is replaying up to (0 when none is running).",
            ["projection"],
            registry=self.registry,
        )
        self.admissions = _CountedInDatabase(
            "mightycall_admissions",
            "Refused deliveries checked again by `rejected admit`, by kind and outcome "
            "(admitted, duplicate, refused, no_body).",
            ["kind", "outcome"],
        )
        self.registry.register(self.admissions)
        self.retries = _CountedInDatabase(
            "mightycall_projection_retries",
            "Batches the live projector retried because the database refused them for now (a lock or"
            " statement timeout, a cancel, a deadlock, a serialization failure, a full disk), by"
            " projection and the error's class.",
            ["projection", "reason"],
        )
        self.registry.register(self.retries)
        self.database_up = Gauge(
            "mightycall_database_up",
            "1 when the last scrape could read the database.",
            registry=self.registry,
        )
        self._delivered: dict[tuple[str, str], Counter] = {}

    def delivered(self, kind: str, outcome: str) -> None:
        """Counts one delivery. Each (kind, outcome)'s child counter is found once: `labels()` checks
        and converts its values on every call, work that every webhook would otherwise repeat."""
        counter = self._delivered.get((kind, outcome))
        if counter is None:
            counter = self._delivered[kind, outcome] = self.deliveries.labels(kind, outcome)
        counter.inc()

    async def read_database(self, pool: asyncpg.Pool) -> None:
        for lag in await projection_lags(pool):
            self.lag_events.labels(lag.name).set(lag.events)
            self.lag_seconds.labels(lag.name).set(lag.seconds)
            self.stopped.labels(lag.name).set(1 if lag.stopped else 0)
            self.rebuilding.labels(lag.name).set(1 if lag.rebuilding else 0)
            # A row left by a rebuild that died is not progress: its shadow table says whether one runs.
            running = lag.rebuilding
            self.rebuild_position.labels(lag.name).set((lag.rebuild_position or 0) if running else 0)
            self.rebuild_head.labels(lag.name).set((lag.rebuild_head or 0) if running else 0)
        rows = await pool.fetch("SELECT kind, outcome, count(*) FROM rejection_admissions GROUP BY 1, 2")
        self.admissions.counts = {(row["kind"], row["outcome"]): row["count"] for row in rows}
        rows = await pool.fetch("SELECT name, reason, retries FROM projection_retries")
        self.retries.counts = {(row["name"], row["reason"]): row["retries"] for row in rows}


def metrics_handler(metrics: Metrics, pool_of: Callable[[], asyncpg.Pool | None]) -> HTTPRouteHandler:
    @get("/metrics", summary="Prometheus metrics", media_type=CONTENT_TYPE_LATEST)
    async def scrape() -> Response[bytes]:
        pool = pool_of()
        up = 0
        if pool is not None:
            try:
                await metrics.read_database(pool)
                up = 1
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
        metrics.database_up.set(up)
        # The counters are worth having even when the database is not: a 200 either way.
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return scrape
