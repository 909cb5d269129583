"""Every projection, by name: what the live projector runs and what `rebuild NAME` accepts."""

from __future__ import annotations

from projections import calls, recordings, reports, sms
from projections.model import Projection

__all__ = ["PROJECTIONS"]

PROJECTIONS: dict[str, Projection] = {
    projection.name: projection
    for projection in (calls.PROJECTION, sms.PROJECTION, recordings.PROJECTION, reports.PROJECTION)
}
