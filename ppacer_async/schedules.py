"""Built-in schedules: a fixed :class:`Interval` and a time-zone aware :class:`Cron`.

Both are plain (non-async) arithmetic, so they test without an event loop. For anything
else, subclass :class:`ppacer_async.abc.Schedule`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from croniter import CroniterBadDateError, CroniterError, croniter

from ._exceptions import ScheduleError
from ._time import is_aware
from .abc import Schedule

__all__ = ["Cron", "Interval", "schedule_from_spec", "schedule_points"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: The shortest ``Interval`` accepted unless ``min_every`` says otherwise: shorter ones
#: are nearly always a mistake that floods the storage with runs.
MIN_EVERY = timedelta(seconds=1)
_HOUR = timedelta(hours=1)
# Python bounds every UTC offset to (-24h, 24h), so no two offsets differ by 48h or more.
_MAX_OFFSET = timedelta(hours=24)
_WINDOW = timedelta(hours=48)

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _aware_utc(moment: object, what: str) -> datetime:
    """Return ``moment`` in UTC, or raise :class:`ScheduleError` if it is not tz-aware."""
    if not isinstance(moment, datetime):
        raise ScheduleError(f"{what} must be a datetime, got {moment!r}")
    if not is_aware(moment):
        raise ScheduleError(
            f"{what} must be tz-aware, got naive {moment.isoformat()}; "
            "pass e.g. datetime(..., tzinfo=timezone.utc)"
        )
    return moment.astimezone(UTC)


# -- Interval -------------------------------------------------------------------------


def _anchor_or_epoch(anchor: datetime | None) -> datetime:
    return _EPOCH if anchor is None else anchor


def _check_every(instance: Interval, attribute: attrs.Attribute[timedelta], every: object) -> None:
    if not isinstance(every, timedelta):
        raise ScheduleError(
            f"Interval every must be a timedelta, got {every!r}; pass e.g. timedelta(minutes=5)"
        )
    if every <= timedelta(0):
        raise ScheduleError(
            f"Interval every must be positive, got {every}; pass e.g. timedelta(minutes=5)"
        )


def _check_anchor(instance: Interval, attribute: attrs.Attribute[datetime], anchor: object) -> None:
    _aware_utc(anchor, "Interval anchor")


def _check_min_every(
    instance: Interval, attribute: attrs.Attribute[timedelta], minimum: object
) -> None:
    if not isinstance(minimum, timedelta) or minimum < timedelta(0):
        raise ScheduleError(
            f"Interval min_every must be a timedelta of zero or more, got {minimum!r}"
        )


@attrs.frozen
class Interval(Schedule):
    """Points every ``every`` of elapsed time: ``anchor + k * every`` for every integer k.

    The arithmetic is exact (integer microseconds), so sub-second intervals do not drift.
    Elapsed time ignores wall clocks: an interval of one day is always 24 hours, even
    across a DST change in the anchor's zone; use :class:`Cron` for "same local time".

    :param every: the distance between points; at least ``min_every``.
    :param anchor: a tz-aware point of the schedule, default 1970-01-01 00:00 UTC.
    :param min_every: the shortest ``every`` accepted, default one second
        (``MIN_EVERY``); lower it, e.g. ``min_every=timedelta(milliseconds=100)``, to
        schedule more often on purpose. Not part of the schedule's identity.
    :raises ScheduleError: ``every`` is not positive or under ``min_every``, or
        ``anchor`` is naive.
    """

    every: timedelta = attrs.field(validator=_check_every)
    anchor: datetime = attrs.field(
        default=None, converter=_anchor_or_epoch, validator=_check_anchor
    )
    min_every: timedelta = attrs.field(
        default=MIN_EVERY, kw_only=True, eq=False, repr=False, validator=_check_min_every
    )

    def __attrs_post_init__(self) -> None:
        if self.every < self.min_every:
            raise ScheduleError(
                f"Interval every must be at least {self.min_every}, got {self.every}: so "
                "short an interval floods the storage with runs; pass e.g. "
                f"timedelta(seconds=5), or add min_every={self.every!r} if you mean it"
            )

    def next(self, after: datetime) -> datetime | None:
        """Return the first point strictly after ``after``, in UTC.

        :return: ``None`` only if that point is past :attr:`datetime.max`.
        :raises ScheduleError: ``after`` is naive.
        """
        after_utc = _aware_utc(after, "after")
        anchor_utc = self.anchor.astimezone(UTC)
        # timedelta // timedelta floors on integer microseconds: exact, also before anchor.
        k = (after_utc - anchor_utc) // self.every + 1
        try:
            return anchor_utc + self.every * k
        except OverflowError:
            return None

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "interval",
            "every_us": self.every // timedelta(microseconds=1),
            "anchor": self.anchor.isoformat(),
        }

    def describe(self) -> str:
        if self.anchor == _EPOCH:
            return f"every {self.every}"
        return f"every {self.every} from {self.anchor.isoformat()}"


# -- Cron -----------------------------------------------------------------------------


def _expand(expr: str) -> str:
    """Map an ``@alias`` to its five-field cron; pass anything else through, stripped."""
    stripped = expr.strip()
    if not stripped.startswith("@"):
        return stripped
    try:
        return _ALIASES[stripped.lower()]
    except KeyError:
        raise ScheduleError(
            f"unsupported cron alias {expr!r}; use one of {', '.join(_ALIASES)} "
            "or a five-field expression such as '0 0 * * *'"
        ) from None


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"unknown time zone {tz!r}; use an IANA name such as 'Europe/Warsaw'"
        ) from None


def _instants(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the naive wall-clock time ``wall`` is due in ``zone``.

    One instant for an ordinary time, two (earlier offset first) for a time that the
    clock shows twice when it falls back, and one for a time the clock skips when it
    springs forward: read with the offset before the change (PEP 495 ``fold=0``), which
    lands the point as long after the jump as it would have been after the gap's start.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return [first]
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return [first, second]
    return [first]


@functools.lru_cache(maxsize=4096)
def _offset_bounds(zone: ZoneInfo, hour: datetime) -> tuple[timedelta, timedelta]:
    """The lowest and highest UTC offset of ``zone`` within 48 hours of ``hour`` (UTC).

    Hourly samples see every offset: no period between two changes in tzdata is shorter
    than about a week.
    """
    offsets = []
    for step in range(-49, 50):
        try:
            local = (hour + step * _HOUR).astimezone(zone)
        except OverflowError:
            continue
        offset = local.utcoffset()
        if offset is not None:
            offsets.append(offset)
    return min(offsets), max(offsets)


@attrs.frozen
class Cron(Schedule):
    """Points where the wall clock in ``tz`` matches a cron expression.

    ``expr`` is anything croniter accepts (five fields ``minute hour day month weekday``,
    optionally seconds and year fields) or one of the aliases ``@yearly``,
    ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``, ``@hourly``.

    Around DST changes every point is a distinct instant and :meth:`next` always moves
    forward in UTC:

    - When the clock falls back, a wall time it shows twice is due twice, once per
      offset: ``5 * * * *`` in Europe/Warsaw on 2024-10-27 gives 02:05+02:00, then
      02:05+01:00, then 03:05+01:00, and a daily ``30 2 * * *`` runs twice that day.
    - When the clock springs forward, a wall time it skips is due as long after the
      jump as it was after the gap's start (PEP 495 ``fold=0``): a daily ``30 2 * * *``
      runs at 03:30 local on 2024-03-31 in Europe/Warsaw, so no day is left out. A
      shifted point that lands on a regular one merges with it, which is why an hourly
      ``5 * * * *`` goes from 01:05 straight to 03:05 that day.

    To be due exactly once per day, schedule outside the changed hour or use ``tz="UTC"``.

    :param expr: the cron expression or alias.
    :param tz: an IANA time zone name in which the fields are read, default ``"UTC"``.
    :raises ScheduleError: the expression is invalid or never matches, or ``tz`` is
        unknown.
    """

    expr: str
    tz: str = "UTC"
    _cron: str = attrs.field(init=False, repr=False, eq=False)
    _zone: ZoneInfo = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.expr, str):
            raise ScheduleError(f"cron expression must be a str, got {self.expr!r}")
        if not isinstance(self.tz, str):
            raise ScheduleError(
                f"cron time zone must be an IANA name (str), got {self.tz!r}; "
                "use e.g. 'Europe/Warsaw'"
            )
        zone = _zone(self.tz)
        cron = _expand(self.expr)
        try:
            # croniter covers years 1970-2099; look that far so a year field is not
            # mistaken for an expression that never matches.
            probe = croniter(cron, datetime(1970, 1, 1), max_years_between_matches=130)
        except (CroniterError, ValueError) as exc:
            raise ScheduleError(
                f"invalid cron expression {self.expr!r}: {exc}; expected "
                "'minute hour day month weekday' (e.g. '0 * * * *') or an alias like '@daily'"
            ) from None
        try:
            probe.get_next(datetime)
        except CroniterBadDateError:
            raise ScheduleError(
                f"cron expression {self.expr!r} never matches a date; "
                "check the day and month fields"
            ) from None
        object.__setattr__(self, "_cron", cron)
        object.__setattr__(self, "_zone", zone)

    def next(self, after: datetime) -> datetime | None:
        """Return the first point strictly after ``after``, in UTC.

        :return: ``None`` when the expression has no later point (a past year field).
        :raises ScheduleError: ``after`` is naive.
        """
        after_utc = _aware_utc(after, "after")
        try:
            return self._next(after_utc)
        except OverflowError:
            return None

    def _next(self, after: datetime) -> datetime | None:
        # croniter walks naive wall-clock times; _instants maps each to the instants it
        # is due. Wall time is not monotonic in UTC near a change, so the walk starts
        # early enough to see points whose wall time is at or before after's (the second
        # pass of a repeated hour, a skipped time shifted past the jump) and goes on
        # until no later wall time can give an earlier instant.
        zone = self._zone
        low, high = _offset_bounds(zone, after.replace(minute=0, second=0, microsecond=0))
        wall = after.astimezone(zone).replace(tzinfo=None)
        walls = croniter(self._cron, wall - (high - low))
        window_end = after + _WINDOW
        best: datetime | None = None
        while True:
            try:
                candidate: datetime = walls.get_next(datetime)
            except CroniterBadDateError:
                return best
            for instant in _instants(candidate, zone):
                if instant > after and (best is None or instant < best):
                    best = instant
            if best is not None:
                # An instant due at wall time w is w - offset; past this bound every
                # later wall time maps after ``best``.
                bound = high if best <= window_end else _MAX_OFFSET
                if candidate.replace(tzinfo=UTC) - bound >= best:
                    return best

    def spec(self) -> dict[str, Any]:
        return {"kind": "cron", "expr": self.expr, "tz": self.tz}

    def describe(self) -> str:
        return f"cron {self.expr!r} {self.tz}"


# -- helpers --------------------------------------------------------------------------


def schedule_from_spec(spec: dict[str, Any]) -> Schedule:
    """Rebuild an :class:`Interval` or :class:`Cron` from its :meth:`~Schedule.spec`.

    :raises ScheduleError: the spec is not one of theirs.
    """
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind == "interval":
        # A stored schedule was accepted when it was defined, whatever its interval.
        return Interval(
            timedelta(microseconds=int(spec["every_us"])),
            datetime.fromisoformat(str(spec["anchor"])),
            min_every=timedelta(0),
        )
    if kind == "cron":
        return Cron(str(spec["expr"]), tz=str(spec.get("tz", "UTC")))
    raise ScheduleError(f"cannot rebuild a schedule from {spec!r}")


def schedule_points(schedule: Schedule, after: datetime, until: datetime) -> Iterator[datetime]:
    """Yield the points of ``schedule`` in ``(after, until]``, oldest first, in UTC.

    Lazy, so callers bound it (catch-up and backfill take only what they may run).

    :raises ScheduleError: ``after`` or ``until`` is naive, or the schedule returns a
        naive point or one that does not move forward.
    """
    cursor = _aware_utc(after, "after")
    end = _aware_utc(until, "until")
    while True:
        point = schedule.next(cursor)
        if point is None:
            return
        point_utc = _aware_utc(point, f"{schedule.describe()} next()")
        if point_utc <= cursor:
            raise ScheduleError(
                f"{schedule.describe()} returned {point.isoformat()} for "
                f"after={cursor.isoformat()}; Schedule.next must return a later time"
            )
        if point_utc > end:
            return
        yield point_utc
        cursor = point_utc
