"""Filling some of a rebuild's shadow tables in a process of its own.

A replay is Python work for most of its time, and Python runs one thread at a time: split over two
processes, the replays of a rebuild use two cores. A child is started as the rebuild begins, so that
its imports (a good part of a small rebuild's time) overlap with the parent's own set-up, and it fills
one group of shadows after another: a rebuild pays for each child's start once, not once per group.

The parent writes each job to the child's stdin as one line (so the database URL never shows in the
process list) and reads one JSON line per batch from its stdout, then the job's outcome. Anything else
the child has to say (a traceback, for one) goes to stderr, which is the parent's. The child exits when
its stdin closes.

    python -m projections.rebuild.fill_process < jobs.jsonl
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import msgspec

from projections.rebuild.fill import OnBatch, Shadow, fill
from projections.registry import PROJECTIONS
from projections.runner import ProjectionFailed
from service.database.pool import connect

__all__ = ["FillProcess"]


class _ShadowByName(msgspec.Struct, frozen=True):
    """A Shadow as the child process is sent it: its projection by name (functions do not travel)."""

    projection: str
    table: str
    deferred_indexes: list[str]


class _Job(msgspec.Struct, frozen=True):
    database_url: str
    region: str
    batch_size: int
    shadows: list[_ShadowByName]


class _Batch(msgspec.Struct, frozen=True, tag="batch"):
    head: int
    reached: int


class _Filled(msgspec.Struct, frozen=True, tag="filled"):
    position: int


class _Failed(msgspec.Struct, frozen=True, tag="failed"):
    """An event could not be applied: what ProjectionFailed says, to raise again in the parent."""

    position: int
    description: str


_Message = _Batch | _Filled | _Failed
_decode_message = msgspec.json.Decoder(_Message).decode


class FillProcess:
    """A child process that runs fill() for one group of shadows after another. Use it as an async
    context manager: leaving the block ends the child (killed, if the block is left by an error or a
    cancellation)."""

    def __init__(self) -> None:
        self._child: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> FillProcess:
        self._child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "projections.rebuild.fill_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        child = self._child
        assert child is not None and child.stdin is not None
        if exc_info[0] is None and child.returncode is None:
            child.stdin.close()
            await child.wait()
        elif child.returncode is None:
            child.kill()
            await child.wait()

    async def fill(
        self, database_url: str, shadows: Sequence[Shadow], *, region: str, batch_size: int, on_batch: OnBatch
    ) -> int:
        """fill() for `shadows` in the child, with connections of its own; returns the position reached.
        The shadows' projections must be the registered ones: the child knows them by name."""
        child = self._child
        assert child is not None and child.stdin is not None and child.stdout is not None
        job = _Job(
            database_url,
            region,
            batch_size,
            [
                _ShadowByName(shadow.projection.name, shadow.table, list(shadow.deferred_indexes))
                for shadow in shadows
            ],
        )
        outcome: _Filled | _Failed | None = None
        try:
            child.stdin.write(msgspec.json.encode(job) + b"\n")
            await child.stdin.drain()
            async for line in child.stdout:
                message = _decode_message(line)
                if isinstance(message, _Batch):
                    on_batch(message.reached, message.head)
                else:
                    outcome = message
                    break
        except BaseException:
            # The child may be mid-job: it is of no further use, and must not outlive the rebuild.
            child.kill()
            raise
        if isinstance(outcome, _Failed):
            raise ProjectionFailed(outcome.position, outcome.description)
        if outcome is None:
            status = await child.wait()
            names = ", ".join(shadow.projection.name for shadow in shadows)
            raise RuntimeError(
                f"filling {names} failed in a child process (exit status {status}); see its error above"
            )
        return outcome.position


async def _fill_job(job: _Job) -> _Filled | _Failed:
    out = sys.stdout.buffer

    def report(reached: int, head: int) -> None:
        # A few dozen bytes a batch: the pipe never fills while the parent reads.
        out.write(msgspec.json.encode(_Batch(head, reached)) + b"\n")
        out.flush()

    shadows = [
        Shadow(PROJECTIONS[spec.projection], spec.table, spec.deferred_indexes) for spec in job.shadows
    ]
    try:
        async with connect(job.database_url) as writer, connect(job.database_url) as reader:
            position = await fill(
                reader, writer, shadows, region=job.region, batch_size=job.batch_size, on_batch=report
            )
    except ProjectionFailed as failed:
        return _Failed(failed.position, failed.description)
    return _Filled(position)


def _main() -> int:
    decode_job = msgspec.json.Decoder(_Job).decode
    for line in sys.stdin.buffer:
        outcome = asyncio.run(_fill_job(decode_job(line)))
        sys.stdout.buffer.write(msgspec.json.encode(outcome) + b"\n")
        sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
