"""What can go wrong with a delivery, in the service's own words. Nothing here knows about HTTP:
service/app.py maps each error to a status code in one place."""

from __future__ import annotations

__all__ = [
    "CONTENT_TYPE_REFUSED",
    "DatabaseUnavailable",
    "Forbidden",
    "IngestError",
    "InvalidPayload",
    "InvalidQuery",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RequestTimeout",
    "TooManyRequests",
    "Unauthorized",
    "UnknownOrganization",
]


CONTENT_TYPE_REFUSED = "the Content-Type header holds control characters"
"""The details of a refusal for the header alone (the header is not kept with the refusal)."""


class IngestError(Exception):
    """Base of the errors a client is told about. `reason` is a short stable code, `details` a sentence
    that is safe to show: it never holds a secret or a message text."""

    reason = "error"

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


class Unauthorized(IngestError):
    reason = "unauthorized"


class PayloadTooLarge(IngestError):
    reason = "payload_too_large"


class RequestTimeout(IngestError):
    """The body did not arrive in time."""

    reason = "request_timeout"


class InvalidPayload(IngestError):
    reason = "invalid_payload"


class UnknownOrganization(IngestError):
    reason = "unknown_organization"


class DatabaseUnavailable(IngestError):
    reason = "database_unavailable"


class Overloaded(IngestError):
    reason = "overloaded"


class TooManyRequests(IngestError):
    """As many long reads of the log (exports, verifications) are running as may run at once."""

    reason = "too_many_requests"


class Forbidden(IngestError):
    """Known credentials asking for what their scope excludes as a whole (not one hidden event: 404)."""

    reason = "forbidden"


class InvalidQuery(IngestError):
    """An auditor's filter value that cannot be used."""

    reason = "invalid_query"


class NotFound(IngestError):
    """Absent, or outside what the credentials may see: the two are not told apart."""

    reason = "not_found"
