from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import pytest

from ppacer_async._exceptions import PpacerError, ScheduleError
from ppacer_async.abc import Schedule
from ppacer_async.schedules import Cron, Interval, schedule_from_spec, schedule_points

WARSAW = ZoneInfo("Europe/Warsaw")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # DST moves the clock by 30 minutes
MINUTE = timedelta(minutes=1)
MICRO = timedelta(microseconds=1)
DAY = timedelta(days=1)


def utc(*fields: int) -> datetime:
    return datetime(*fields).replace(tzinfo=UTC)  # type: ignore[arg-type]


def local(zone: ZoneInfo, *fields: int, fold: int = 0) -> datetime:
    return datetime(*fields).replace(tzinfo=zone, fold=fold)  # type: ignore[arg-type]


def walk(schedule: Schedule, after: datetime, steps: int) -> list[datetime]:
    points = []
    for _ in range(steps):
        point = schedule.next(after)
        assert point is not None
        points.append(point)
        after = point
    return points


def assert_strictly_increasing_utc(points: list[datetime]) -> None:
    assert all(point.tzinfo is UTC for point in points)
    assert all(a < b for a, b in itertools.pairwise(points))


# -- Interval -------------------------------------------------------------------------


def test_interval_steps_of_100ms_are_exact() -> None:
    every = Interval(timedelta(milliseconds=100), min_every=timedelta(0))
    start = utc(2024, 5, 1, 12, 0, 0)
    points = walk(every, start, 1000)
    assert points == [start + k * timedelta(microseconds=100_000) for k in range(1, 1001)]
    assert points[-1] == utc(2024, 5, 1, 12, 1, 40)


def test_interval_next_is_strictly_after_a_point() -> None:
    every = Interval(timedelta(minutes=5))
    assert every.next(utc(2024, 1, 1, 10, 5)) == utc(2024, 1, 1, 10, 10)
    assert every.next(utc(2024, 1, 1, 10, 5) - MICRO) == utc(2024, 1, 1, 10, 5)
    assert every.next(utc(2024, 1, 1, 10, 5) + MICRO) == utc(2024, 1, 1, 10, 10)


def test_interval_default_anchor_is_unix_epoch() -> None:
    every = Interval(timedelta(hours=7))
    assert every.anchor == utc(1970, 1, 1)
    point = every.next(utc(2024, 1, 1))
    assert point is not None
    assert (point - utc(1970, 1, 1)) % timedelta(hours=7) == timedelta(0)


def test_interval_points_align_to_anchor() -> None:
    every = Interval(timedelta(minutes=5), anchor=utc(2024, 1, 1, 0, 2, 30))
    assert every.next(utc(2024, 6, 1, 12, 0)) == utc(2024, 6, 1, 12, 2, 30)
    assert every.next(utc(2024, 6, 1, 12, 2, 30)) == utc(2024, 6, 1, 12, 7, 30)


def test_interval_gives_aligned_points_before_its_anchor() -> None:
    every = Interval(timedelta(minutes=10), anchor=utc(2024, 1, 1, 0, 3))
    assert every.next(utc(2023, 12, 31, 23, 50)) == utc(2023, 12, 31, 23, 53)


def test_interval_counts_elapsed_time_across_dst() -> None:
    daily = Interval(timedelta(days=1), anchor=local(WARSAW, 2024, 3, 30, 12))
    points = walk(daily, local(WARSAW, 2024, 3, 30, 12), 2)
    assert points == [utc(2024, 3, 31, 11), utc(2024, 4, 1, 11)]
    assert [p.astimezone(WARSAW).hour for p in points] == [13, 13]


def test_interval_returns_utc_for_an_after_in_another_zone() -> None:
    every = Interval(timedelta(hours=1))
    point = every.next(local(WARSAW, 2024, 7, 1, 10, 30))
    assert point == utc(2024, 7, 1, 9)
    assert point is not None
    assert point.tzinfo is UTC


def test_interval_returns_none_past_the_largest_datetime() -> None:
    every = Interval(timedelta(days=400))
    assert every.next(datetime.max.replace(tzinfo=UTC) - timedelta(days=1)) is None


@pytest.mark.parametrize(
    ("every", "shown"),
    [(timedelta(seconds=-1), "-1 day, 23:59:59"), (timedelta(0), "0:00:00")],
)
def test_interval_rejects_non_positive_every(every: timedelta, shown: str) -> None:
    with pytest.raises(ScheduleError) as info:
        Interval(every)
    assert str(info.value) == (
        f"Interval every must be positive, got {shown}; pass e.g. timedelta(minutes=5)"
    )


def test_interval_refuses_every_under_one_second_by_default() -> None:
    with pytest.raises(ScheduleError) as info:
        Interval(timedelta(microseconds=1))
    message = str(info.value)
    assert message.startswith(
        "Interval every must be at least 0:00:01, got 0:00:00.000001: so short an interval"
    )
    assert "min_every=" in message
    assert Interval(timedelta(seconds=1)).every == timedelta(seconds=1)


def test_interval_minimum_can_be_lowered_on_purpose_without_changing_identity() -> None:
    fast = Interval(timedelta(milliseconds=100), min_every=timedelta(milliseconds=100))
    assert fast.next(utc(2024, 1, 1)) == utc(2024, 1, 1) + timedelta(milliseconds=100)
    assert fast == Interval(timedelta(milliseconds=100), min_every=timedelta(0))
    assert schedule_from_spec(fast.spec()) == fast
    with pytest.raises(ScheduleError, match="min_every must be a timedelta of zero or more"):
        Interval(timedelta(seconds=5), min_every=timedelta(seconds=-1))
    with pytest.raises(ScheduleError, match="at least 0:01:00, got 0:00:30"):
        Interval(timedelta(seconds=30), min_every=timedelta(minutes=1))


def test_interval_rejects_every_that_is_not_a_timedelta() -> None:
    with pytest.raises(ScheduleError, match=r"must be a timedelta, got 300; pass e\.g\."):
        Interval(300)  # type: ignore[arg-type]


def test_interval_rejects_naive_anchor() -> None:
    with pytest.raises(ScheduleError, match="anchor must be tz-aware, got naive 2024-01-01"):
        Interval(timedelta(minutes=1), anchor=datetime(2024, 1, 1))


def test_schedule_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        Interval(timedelta(0))
    assert issubclass(ScheduleError, PpacerError)


def test_interval_describe_shows_the_period_and_any_anchor() -> None:
    assert Interval(timedelta(minutes=5)).describe() == "every 0:05:00"
    anchored = Interval(timedelta(hours=1), anchor=utc(2024, 1, 1, 0, 30))
    assert anchored.describe() == "every 1:00:00 from 2024-01-01T00:30:00+00:00"


def test_interval_points_lie_on_the_grid_within_one_step() -> None:
    rng = random.Random(20240331)
    for _ in range(500):
        every = timedelta(microseconds=rng.randint(1, 10 * 86_400 * 10**6))
        anchor = utc(2000, 1, 1) + timedelta(microseconds=rng.randint(0, 10**15))
        after = utc(2020, 1, 1) + timedelta(microseconds=rng.randint(-(10**15), 10**15))
        point = Interval(every, anchor=anchor, min_every=timedelta(0)).next(after)
        assert point is not None
        assert after < point <= after + every
        assert (point - anchor) % every == timedelta(0)


# -- Cron: basics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "expr"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_cron_aliases_match_their_five_field_crons(alias: str, expr: str) -> None:
    start = local(WARSAW, 2024, 2, 14, 9, 41)
    assert walk(Cron(alias, "Europe/Warsaw"), start, 5) == walk(
        Cron(expr, "Europe/Warsaw"), start, 5
    )


def test_cron_alias_examples() -> None:
    after = utc(2024, 2, 14, 9, 41)
    assert Cron("@hourly").next(after) == utc(2024, 2, 14, 10)
    assert Cron("@daily").next(after) == utc(2024, 2, 15)
    assert Cron("@weekly").next(after) == utc(2024, 2, 18)  # a Sunday
    assert Cron("@monthly").next(after) == utc(2024, 3, 1)
    assert Cron("@yearly").next(after) == utc(2025, 1, 1)
    assert Cron(" @Daily ").next(after) == utc(2024, 2, 15)


def test_cron_rejects_unsupported_alias() -> None:
    with pytest.raises(ScheduleError, match="unsupported cron alias '@reboot'; use one of @yearly"):
        Cron("@reboot")


@pytest.mark.parametrize(
    ("expr", "complaint"),
    [
        ("61 * * * *", "out of range"),
        ("* * * *", "Exactly 5, 6 or 7 columns"),
        ("", "Exactly 5, 6 or 7 columns"),
        ("0 0 * * funday", "funday"),
    ],
)
def test_cron_rejects_invalid_expression_naming_it_and_the_reason(
    expr: str, complaint: str
) -> None:
    with pytest.raises(ScheduleError) as info:
        Cron(expr)
    message = str(info.value)
    assert message.startswith(f"invalid cron expression {expr!r}: ")
    assert complaint in message
    assert "'minute hour day month weekday'" in message


def test_cron_rejects_expression_that_never_matches() -> None:
    with pytest.raises(ScheduleError, match=r"'0 0 30 2 \*' never matches a date"):
        Cron("0 0 30 2 *")


def test_cron_rejects_unknown_time_zone() -> None:
    with pytest.raises(ScheduleError) as info:
        Cron("0 * * * *", "Europe/Warsw")
    assert str(info.value) == (
        "unknown time zone 'Europe/Warsw'; use an IANA name such as 'Europe/Warsaw'"
    )


@pytest.mark.parametrize("tz", ["", "../etc/passwd", "/etc/localtime", "europe/warsaw"])
def test_cron_rejects_malformed_time_zone_names(tz: str) -> None:
    with pytest.raises(ScheduleError, match=f"unknown time zone {tz!r}"):
        Cron("0 * * * *", tz)


def test_cron_rejects_time_zone_object_instead_of_name() -> None:
    with pytest.raises(ScheduleError, match="must be an IANA name"):
        Cron("0 * * * *", WARSAW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "schedule", [Cron("0 * * * *"), Cron("0 * * * *", "Europe/Warsaw"), Interval(MINUTE)]
)
def test_naive_after_is_rejected(schedule: Schedule) -> None:
    with pytest.raises(ScheduleError, match="after must be tz-aware, got naive 2024-01-01"):
        schedule.next(datetime(2024, 1, 1))


def test_cron_returns_tz_aware_utc() -> None:
    point = Cron("15 9 * * *", "Europe/Warsaw").next(local(WARSAW, 2024, 1, 10, 8))
    assert point == utc(2024, 1, 10, 8, 15)
    assert point is not None
    assert point.tzinfo is UTC


def test_cron_reads_fields_in_its_zone() -> None:
    nine = Cron("0 9 * * *", "America/New_York")
    assert nine.next(utc(2024, 1, 10)) == utc(2024, 1, 10, 14)
    assert nine.next(utc(2024, 7, 10)) == utc(2024, 7, 10, 13)


def test_cron_next_is_strictly_after_a_point() -> None:
    hourly = Cron("0 * * * *", "Europe/Warsaw")
    assert hourly.next(utc(2024, 1, 1, 10)) == utc(2024, 1, 1, 11)
    assert hourly.next(utc(2024, 1, 1, 10) - MICRO) == utc(2024, 1, 1, 10)
    assert hourly.next(utc(2024, 1, 1, 10) + MICRO) == utc(2024, 1, 1, 11)


def test_cron_returns_none_when_the_expression_has_no_later_point() -> None:
    once = Cron("0 0 1 1 * 0 2030")
    assert once.next(utc(2029, 6, 1)) == utc(2030, 1, 1)
    assert once.next(utc(2030, 1, 1)) is None


def test_cron_describe_shows_expression_and_zone() -> None:
    assert Cron("0 * * * *", "Europe/Warsaw").describe() == "cron '0 * * * *' Europe/Warsaw"
    assert Cron("@daily").describe() == "cron '@daily' UTC"


def test_schedules_are_immutable_values() -> None:
    assert Cron("0 * * * *", "Europe/Warsaw") == Cron("0 * * * *", "Europe/Warsaw")
    assert Interval(MINUTE) == Interval(MINUTE, anchor=utc(1970, 1, 1))
    assert len({Cron("@daily"), Cron("@daily"), Interval(MINUTE)}) == 2
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Cron("@daily").tz = "Europe/Warsaw"  # type: ignore[misc]


# -- Cron: DST ------------------------------------------------------------------------


def test_cron_skips_nonexistent_hour_on_spring_forward() -> None:
    hourly = Cron("5 * * * *", "Europe/Warsaw")
    points = walk(hourly, local(WARSAW, 2024, 3, 31, 1, 59), 2)
    assert points == [local(WARSAW, 2024, 3, 31, 3, 5), local(WARSAW, 2024, 3, 31, 4, 5)]
    assert points[0] == utc(2024, 3, 31, 1, 5)


def test_cron_runs_repeated_hour_once_per_offset_on_fall_back() -> None:
    hourly = Cron("5 * * * *", "Europe/Warsaw")
    points = walk(hourly, local(WARSAW, 2024, 10, 27, 1, 59), 3)
    assert points == [utc(2024, 10, 27, 0, 5), utc(2024, 10, 27, 1, 5), utc(2024, 10, 27, 2, 5)]
    assert [p.astimezone(WARSAW).isoformat() for p in points] == [
        "2024-10-27T02:05:00+02:00",
        "2024-10-27T02:05:00+01:00",
        "2024-10-27T03:05:00+01:00",
    ]


def test_cron_from_first_pass_of_repeated_hour_finds_the_second_pass() -> None:
    hourly = Cron("5 * * * *", "Europe/Warsaw")
    first_pass = local(WARSAW, 2024, 10, 27, 2, 50, fold=0)
    second_pass_point = local(WARSAW, 2024, 10, 27, 2, 5, fold=1).astimezone(UTC)
    assert hourly.next(first_pass) == second_pass_point == utc(2024, 10, 27, 1, 5)
    second_pass = local(WARSAW, 2024, 10, 27, 2, 50, fold=1)
    assert hourly.next(second_pass) == utc(2024, 10, 27, 2, 5)


def test_cron_daily_in_skipped_hour_runs_shifted_by_the_gap() -> None:
    daily = Cron("30 2 * * *", "Europe/Warsaw")
    points = walk(daily, local(WARSAW, 2024, 3, 30, 12), 3)
    assert [p.astimezone(WARSAW).isoformat() for p in points] == [
        "2024-03-31T03:30:00+02:00",
        "2024-04-01T02:30:00+02:00",
        "2024-04-02T02:30:00+02:00",
    ]


def test_cron_finds_shifted_point_from_just_after_the_jump() -> None:
    daily = Cron("30 2 * * *", "Europe/Warsaw")
    assert daily.next(local(WARSAW, 2024, 3, 31, 3, 10)) == local(WARSAW, 2024, 3, 31, 3, 30)
    assert daily.next(local(WARSAW, 2024, 3, 31, 3, 30)) == local(WARSAW, 2024, 4, 1, 2, 30)


def test_cron_daily_in_repeated_hour_runs_twice_on_fall_back() -> None:
    daily = Cron("30 1 * * *", "America/New_York")
    points = walk(daily, local(NEW_YORK, 2024, 11, 2, 12), 3)
    assert [p.astimezone(NEW_YORK).isoformat() for p in points] == [
        "2024-11-03T01:30:00-04:00",
        "2024-11-03T01:30:00-05:00",
        "2024-11-04T01:30:00-05:00",
    ]


def test_cron_in_us_zone_skips_nonexistent_hour_on_spring_forward() -> None:
    every_half_hour = Cron("*/30 * * * *", "America/New_York")
    points = walk(every_half_hour, local(NEW_YORK, 2024, 3, 10, 1, 0), 3)
    assert [p.astimezone(NEW_YORK).isoformat() for p in points] == [
        "2024-03-10T01:30:00-05:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-10T03:30:00-04:00",
    ]


def test_cron_with_half_hour_dst_shifts_skipped_times_by_30_minutes() -> None:
    hourly = Cron("0 * * * *", "Australia/Lord_Howe")
    points = walk(hourly, local(LORD_HOWE, 2024, 10, 6, 1, 30), 3)
    assert [p.astimezone(LORD_HOWE).isoformat() for p in points] == [
        "2024-10-06T02:30:00+11:00",
        "2024-10-06T03:00:00+11:00",
        "2024-10-06T04:00:00+11:00",
    ]


def test_cron_hourly_from_march_to_november_hits_every_utc_hour_once() -> None:
    # Warsaw's offsets are whole hours, so its :00 points are exactly the UTC hours.
    hourly = Cron("0 * * * *", "Europe/Warsaw")
    points = list(schedule_points(hourly, utc(2024, 3, 1), utc(2024, 11, 1)))
    hours = (utc(2024, 11, 1) - utc(2024, 3, 1)) // timedelta(hours=1)
    assert points == [utc(2024, 3, 1) + k * timedelta(hours=1) for k in range(1, hours + 1)]


def _is_due(zone: ZoneInfo, matches: Callable[[datetime], bool], instant: datetime) -> bool:
    """The documented rule, checked one instant at a time.

    An instant is due when its wall-clock reading matches, or when it is the ``fold=0``
    reading of a matching wall time that the clock skips.
    """
    wall = instant.astimezone(zone).replace(tzinfo=None)
    if matches(wall):
        return True
    for offset in {(instant + shift).astimezone(zone).utcoffset() for shift in (-2 * DAY, 2 * DAY)}:
        assert offset is not None
        skipped = (instant + offset).replace(tzinfo=None)
        reading = skipped.replace(tzinfo=zone).astimezone(UTC)
        exists = reading.astimezone(zone).replace(tzinfo=None) == skipped
        if matches(skipped) and not exists and reading == instant:
            return True
    return False


def _reference_points(
    zone: ZoneInfo, matches: Callable[[datetime], bool], after: datetime, until: datetime
) -> list[datetime]:
    """Every due minute in (after, until], found by trying each UTC minute."""
    # Step in UTC: adding to a zoned datetime would step the wall clock instead.
    minute = after.astimezone(UTC).replace(second=0, microsecond=0) + MINUTE
    found = []
    while minute <= until:
        if _is_due(zone, matches, minute):
            found.append(minute)
        minute += MINUTE
    return found


DST_DAYS = [
    ("warsaw-spring", "Europe/Warsaw", (2024, 3, 31)),
    ("warsaw-fall", "Europe/Warsaw", (2024, 10, 27)),
    ("new_york-spring", "America/New_York", (2024, 3, 10)),
    ("new_york-fall", "America/New_York", (2024, 11, 3)),
    ("lord_howe-spring", "Australia/Lord_Howe", (2024, 10, 6)),
    ("lord_howe-fall", "Australia/Lord_Howe", (2024, 4, 7)),
]

CRONS: dict[str, Callable[[datetime], bool]] = {
    "0 * * * *": lambda w: w.minute == 0,
    "*/15 * * * *": lambda w: w.minute % 15 == 0,
    "5 * * * *": lambda w: w.minute == 5,
    "30 1 * * *": lambda w: (w.hour, w.minute) == (1, 30),
    "30 2 * * *": lambda w: (w.hour, w.minute) == (2, 30),
}

# Points on the local calendar day of the change. Spring: the skipped hour's times move
# onto the next hour and merge with it; fall: the repeated hour's times run twice.
EXPECTED_COUNTS = {
    ("warsaw-spring", "0 * * * *"): 23,
    ("warsaw-spring", "*/15 * * * *"): 92,
    ("warsaw-spring", "30 2 * * *"): 1,
    ("warsaw-fall", "0 * * * *"): 25,
    ("warsaw-fall", "*/15 * * * *"): 100,
    ("warsaw-fall", "30 2 * * *"): 2,
    ("new_york-spring", "0 * * * *"): 23,
    ("new_york-spring", "*/15 * * * *"): 92,
    ("new_york-spring", "30 2 * * *"): 1,
    ("new_york-fall", "0 * * * *"): 25,
    ("new_york-fall", "*/15 * * * *"): 100,
    ("new_york-fall", "30 1 * * *"): 2,
    ("lord_howe-spring", "0 * * * *"): 24,
    ("lord_howe-spring", "*/15 * * * *"): 94,
    ("lord_howe-fall", "0 * * * *"): 24,
    ("lord_howe-fall", "*/15 * * * *"): 98,
}


@pytest.mark.parametrize(("name", "tz", "day"), DST_DAYS, ids=[case[0] for case in DST_DAYS])
@pytest.mark.parametrize("expr", list(CRONS))
def test_cron_walk_over_dst_day_matches_minute_by_minute_reference(
    name: str, tz: str, day: tuple[int, int, int], expr: str
) -> None:
    zone = ZoneInfo(tz)
    cron = Cron(expr, tz)
    after = local(zone, *day) - timedelta(seconds=1)
    until = local(zone, *day) + DAY - timedelta(seconds=1)
    points = list(schedule_points(cron, after, until))
    assert_strictly_increasing_utc(points)
    assert len(set(points)) == len(points)
    assert points == _reference_points(zone, CRONS[expr], after, until)
    expected = EXPECTED_COUNTS.get((name, expr))
    if expected is not None:
        assert len(points) == expected


def test_cron_next_from_random_times_near_dst_is_the_first_due_instant() -> None:
    rng = random.Random(1027)
    for _ in range(300):
        _, tz, day = rng.choice(DST_DAYS)
        expr = rng.choice(["0 * * * *", "*/15 * * * *", "5 * * * *", "30 2 * * *"])
        zone = ZoneInfo(tz)
        middle = local(zone, *day, 2).astimezone(UTC)
        after = middle + timedelta(microseconds=rng.randint(-4 * 3600 * 10**6, 4 * 3600 * 10**6))
        point = Cron(expr, tz).next(after)
        assert point is not None
        assert point.tzinfo is UTC
        assert point > after
        assert _is_due(zone, CRONS[expr], point)
        assert _reference_points(zone, CRONS[expr], after, point) == [point]


# -- schedule_points and custom schedules ---------------------------------------------


@attrs.frozen
class ListedTimes(Schedule):
    """A user-written schedule: a fixed list of instants."""

    times: tuple[datetime, ...]

    def next(self, after: datetime) -> datetime | None:
        return next((t for t in sorted(self.times) if t > after), None)


def test_schedule_points_yields_points_in_half_open_range() -> None:
    points = list(
        schedule_points(Interval(timedelta(minutes=5)), utc(2024, 1, 1), utc(2024, 1, 1, 0, 20))
    )
    assert points == [
        utc(2024, 1, 1, 0, 5),
        utc(2024, 1, 1, 0, 10),
        utc(2024, 1, 1, 0, 15),
        utc(2024, 1, 1, 0, 20),
    ]


def test_schedule_points_is_empty_when_until_is_not_after_after() -> None:
    every = Interval(MINUTE)
    assert list(schedule_points(every, utc(2024, 1, 1, 1), utc(2024, 1, 1, 1))) == []
    assert list(schedule_points(every, utc(2024, 1, 1, 1), utc(2024, 1, 1))) == []


def test_schedule_points_returns_utc_for_bounds_in_other_zones() -> None:
    cron = Cron("0 * * * *", "Europe/Warsaw")
    points = list(
        schedule_points(cron, local(WARSAW, 2024, 6, 1, 10), local(WARSAW, 2024, 6, 1, 12))
    )
    assert points == [utc(2024, 6, 1, 9), utc(2024, 6, 1, 10)]
    assert all(p.tzinfo is UTC for p in points)


def test_schedule_points_rejects_naive_bounds() -> None:
    with pytest.raises(ScheduleError, match="until must be tz-aware"):
        list(schedule_points(Interval(MINUTE), utc(2024, 1, 1), datetime(2024, 1, 2)))
    with pytest.raises(ScheduleError, match="after must be tz-aware"):
        list(schedule_points(Interval(MINUTE), datetime(2024, 1, 1), utc(2024, 1, 2)))


def test_custom_schedule_subclass_works_with_schedule_points() -> None:
    listed = ListedTimes((utc(2024, 1, 3), local(WARSAW, 2024, 1, 2, 1), utc(2024, 1, 5)))
    assert list(schedule_points(listed, utc(2024, 1, 1), utc(2024, 1, 4))) == [
        utc(2024, 1, 2, 0),
        utc(2024, 1, 3),
    ]
    assert list(schedule_points(listed, utc(2024, 1, 1), utc(2025, 1, 1)))[-1] == utc(2024, 1, 5)


def test_schedule_points_rejects_schedule_that_does_not_move_forward() -> None:
    class Stuck(Schedule):
        def next(self, after: datetime) -> datetime | None:
            return after

        def describe(self) -> str:
            return "stuck"

    with pytest.raises(ScheduleError, match=r"stuck returned .* must return a later time"):
        list(schedule_points(Stuck(), utc(2024, 1, 1), utc(2024, 1, 2)))


def test_schedule_points_rejects_schedule_returning_naive_times() -> None:
    class Naive(Schedule):
        def next(self, after: datetime) -> datetime | None:
            return datetime(2024, 1, 1, 12)

    with pytest.raises(ScheduleError, match="must be tz-aware"):
        list(schedule_points(Naive(), utc(2024, 1, 1), utc(2024, 1, 2)))


@pytest.mark.parametrize(
    "schedule",
    [
        Interval(timedelta(milliseconds=1500)),
        Interval(timedelta(hours=2), datetime(2026, 1, 1, 0, 30, tzinfo=UTC)),
        Cron("5 * * * *", tz="Europe/Warsaw"),
        Cron("@daily"),
    ],
)
def test_built_in_schedules_round_trip_through_their_spec(schedule: Schedule) -> None:
    import json

    from ppacer_async.schedules import schedule_from_spec

    spec = schedule.spec()
    assert spec is not None
    rebuilt = schedule_from_spec(json.loads(json.dumps(spec)))
    after = datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert rebuilt == schedule
    assert rebuilt.next(after) == schedule.next(after)


def test_unknown_spec_cannot_be_rebuilt() -> None:
    from ppacer_async.schedules import schedule_from_spec

    with pytest.raises(ScheduleError, match="cannot rebuild"):
        schedule_from_spec({"kind": "lunar"})
