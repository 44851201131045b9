"""Time helpers shared by schedules, storage and the engine."""

from __future__ import annotations

from datetime import UTC, datetime


def to_utc(moment: datetime) -> datetime:
    """Convert a tz-aware datetime to UTC. :raises ValueError: ``moment`` is naive."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"datetime {moment.isoformat()} has no time zone; "
            "pass an aware one, e.g. datetime(..., tzinfo=timezone.utc)"
        )
    return moment.astimezone(UTC)


def is_aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None
