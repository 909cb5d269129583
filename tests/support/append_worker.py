"""A separate process appending to the log with deliberately delayed and rolled-back commits.

    python -m tests.support.append_worker DATABASE_URL ORG_ID TRANSACTIONS SEED

Prints one JSON line per committed event: {"id": N, "sha256": hex}.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import random
import sys
import uuid

import asyncpg

from service.eventlog.append import Delivery, append


def _delivery(org_id: uuid.UUID, rng: random.Random) -> Delivery:
    body = json.dumps({"event": "sms.received", "sms_id": uuid.UUID(int=rng.getrandbits(128)).hex}).encode()
    return Delivery(
        kind="sms",
        event_type="sms.received",
        org_id=org_id,
        external_id="x",
        content_type="application/json",
        body=body,
        body_sha256=hashlib.sha256(body).digest(),
        received_at=dt.datetime.now(dt.UTC),
    )


async def main(url: str, org_id: uuid.UUID, transactions: int, seed: int) -> None:
    rng = random.Random(seed)
    conn = await asyncpg.connect(url)
    try:
        for _ in range(transactions):
            batch = [_delivery(org_id, rng) for _ in range(rng.randint(1, 3))]
            tx = conn.transaction()
            await tx.start()
            results = await append(conn, batch)
            # The commit comes late, and sometimes not at all: the cases that make a sequence-based log
            # show positions out of commit order, or holes.
            await asyncio.sleep(rng.uniform(0, 0.01))
            if rng.random() < 0.2:
                await tx.rollback()
                continue
            await tx.commit()
            for delivery, result in zip(batch, results, strict=True):
                print(json.dumps({"id": result.event_id, "sha256": delivery.body_sha256.hex()}), flush=True)
    finally:
        await conn.close()


if __name__ == "__main__":
    url, org, count, seed = sys.argv[1:5]
    asyncio.run(main(url, uuid.UUID(org), int(count), int(seed)))
