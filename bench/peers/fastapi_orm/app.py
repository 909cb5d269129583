"""PEER FOR COMPARISON - NOT PART OF THE PRODUCT.

The MightyCall webhook receiver as most teams would write it: FastAPI + pydantic v2 models, SQLAlchemy 2.x
ORM on asyncpg, one ORM insert and one commit per request. It exists only so that bench/ can measure the
product side by side with the ordinary approach. See README.md for what it does and does not do.

Environment:
  DATABASE_URL         postgresql://... (also postgres://, postgresql+asyncpg://; `?host=/socket/dir` works)
  PEER_WEBHOOK_SECRET  the bearer secret
  PEER_POOL_SIZE       SQLAlchemy pool_size per worker process (default 20)
  PEER_MAX_OVERFLOW    SQLAlchemy max_overflow per worker process (default 10)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from pydantic import BaseModel, Field
from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, LargeBinary, Text, Uuid, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# --- configuration ----------------------------------------------------------------------------------


def async_database_url(url: str) -> str:
    """postgresql://... -> postgresql+asyncpg://...; libpq's `sslmode` becomes asyncpg's `ssl`."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql+asyncpg://" + url[len(prefix) :]
            break
    else:
        raise RuntimeError("DATABASE_URL must be a postgresql:// URL")
    parts = urlsplit(url)
    query = [("ssl" if key == "sslmode" else key, value) for key, value in parse_qsl(parts.query)]
    return urlunsplit(parts._replace(query=urlencode(query)))


DATABASE_URL = async_database_url(os.environ["DATABASE_URL"])
WEBHOOK_SECRET = os.environ["PEER_WEBHOOK_SECRET"]
if not WEBHOOK_SECRET:
    raise RuntimeError("PEER_WEBHOOK_SECRET is empty")

engine = create_async_engine(
    DATABASE_URL,
    pool_size=int(os.environ.get("PEER_POOL_SIZE", "20")),
    max_overflow=int(os.environ.get("PEER_MAX_OVERFLOW", "10")),
    # Same durability promise as the product: a 202 means the row is on disk.
    connect_args={"server_settings": {"application_name": "peer-fastapi-orm", "synchronous_commit": "on"}},
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


# --- ORM models -------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    pass


class Organization(Base):
    """Created by the product's migrations; mapped read-only (never added to, never created here)."""

    __tablename__ = "organizations"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(Text)


class Integration(Base):
    """Created by the product's migrations; mapped read-only."""

    __tablename__ = "integrations"

    id: Mapped[UUID] = mapped_column(Uuid, primary_key=True)
    org_id: Mapped[UUID] = mapped_column(Uuid, ForeignKey("organizations.id"))


class PeerEvent(Base):
    __tablename__ = "peer_events"
    __table_args__ = (Index("peer_events_org_kind_external", "org_id", "kind", "external_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # BIGSERIAL
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))
    kind: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    org_id: Mapped[UUID] = mapped_column(Uuid, ForeignKey("organizations.id"))
    external_id: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    body_sha256: Mapped[bytes] = mapped_column(LargeBinary)


# --- request models (the seed payloads; unknown fields are ignored by validation, kept in `body`) ---


class Envelope(BaseModel):
    event: str
    org_id: UUID | None = None
    integration_id: UUID | None = None


class CallWebhook(Envelope):
    call_id: str
    phone_number: str
    timestamp: datetime
    caller_name: str | None = None
    caller_phone: str | None = None
    duration: int | None = Field(default=None, ge=0)
    status: str | None = None
    direction: Literal["inbound", "outbound"] | None = None
    recording_url: str | None = None


class SmsWebhook(Envelope):
    sms_id: str
    phone_number: str
    direction: Literal["inbound", "outbound"]
    timestamp: datetime
    sender: str | None = None
    recipient: str | None = None
    message: str | None = None
    status: str | None = None


class RecordingWebhook(Envelope):
    recording_id: str
    call_id: str
    url: str
    timestamp: datetime
    phone_number: str | None = None
    duration: int | None = Field(default=None, ge=0)
    format: str | None = None
    size_bytes: int | None = Field(default=None, ge=0)


class Metric(BaseModel):
    metric_type: Literal[
        "calls_total",
        "calls_completed",
        "calls_missed",
        "calls_transferred",
        "calls_abandoned",
        "avg_call_duration",
        "sms_sent",
        "sms_received",
        "queue_wait_time",
        "agent_active_time",
    ]
    value: float
    unit: str | None = None


class ReportWebhook(Envelope):
    report_id: str
    report_type: str
    date: date
    metrics: list[Metric] = Field(min_length=1)
    phone_number: str | None = None
    timestamp: datetime | None = None


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    event_id: int


# --- dependencies -----------------------------------------------------------------------------------


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


def verify_secret(authorization: Annotated[str | None, Header()] = None) -> None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), WEBHOOK_SECRET.encode()):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="invalid or missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )


Session = Annotated[AsyncSession, Depends(get_session)]


async def resolve_org(session: AsyncSession, payload: Envelope) -> UUID:
    if payload.integration_id is not None:
        integration = (
            await session.execute(select(Integration).where(Integration.id == payload.integration_id))
        ).scalar_one_or_none()
        if integration is None:
            raise HTTPException(status_code=400, detail="unknown integration_id")
        if payload.org_id is not None and payload.org_id != integration.org_id:
            raise HTTPException(
                status_code=400, detail="org_id and integration_id name different organizations"
            )
        return integration.org_id
    if payload.org_id is None:
        raise HTTPException(status_code=400, detail="no organization context: give org_id or integration_id")
    org = (
        await session.execute(select(Organization).where(Organization.id == payload.org_id))
    ).scalar_one_or_none()
    if org is None:
        raise HTTPException(status_code=400, detail="unknown org_id")
    return org.id


async def store(
    session: AsyncSession, request: Request, kind: str, payload: Envelope, external_id: str
) -> Accepted:
    org_id = await resolve_org(session, payload)
    body = await request.body()  # the raw bytes, as received (Starlette caches what FastAPI already read)
    event = PeerEvent(
        kind=kind,
        event_type=payload.event,
        org_id=org_id,
        external_id=external_id,
        body=body,
        body_sha256=hashlib.sha256(body).digest(),
    )
    session.add(event)
    await session.commit()
    return Accepted(event_id=event.id)


# --- app --------------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    async with engine.begin() as conn:
        # Every uvicorn worker runs this at once: serialise them, so only one issues the CREATE TABLE.
        await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('peer_events'))"))
        await conn.run_sync(Base.metadata.create_all, tables=[PeerEvent.__table__])
    yield
    await engine.dispose()


app = FastAPI(title="peer: fastapi + sqlalchemy orm (not part of the product)", lifespan=lifespan)

ACCEPTED = {"status_code": status.HTTP_202_ACCEPTED, "dependencies": [Depends(verify_secret)]}


@app.post("/functions/v1/mightycall-calls-webhook", **ACCEPTED)
async def calls_webhook(payload: CallWebhook, request: Request, session: Session) -> Accepted:
    return await store(session, request, "calls", payload, payload.call_id)


@app.post("/functions/v1/mightycall-sms-webhook", **ACCEPTED)
async def sms_webhook(payload: SmsWebhook, request: Request, session: Session) -> Accepted:
    return await store(session, request, "sms", payload, payload.sms_id)


@app.post("/functions/v1/mightycall-recordings-webhook", **ACCEPTED)
async def recordings_webhook(payload: RecordingWebhook, request: Request, session: Session) -> Accepted:
    return await store(session, request, "recordings", payload, payload.recording_id)


@app.post("/functions/v1/mightycall-reports-webhook", **ACCEPTED)
async def reports_webhook(payload: ReportWebhook, request: Request, session: Session) -> Accepted:
    return await store(session, request, "reports", payload, payload.report_id)
