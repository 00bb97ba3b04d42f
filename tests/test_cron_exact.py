"""Next-run times follow crontab(5) as cronie implements it: checked against cronsim.

cronsim (a dev dependency, never imported by webapp/) is the independent reference. The
property test draws thousands of (expression, zone, instant) cases from a fixed seed, with
instants concentrated around DST changes and 29 February 2028, and compares
`Schedule.next_after` with cronsim. The explicit tests pin the rules with exact instants.
"""

from __future__ import annotations

import bisect
import random
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim, CronSimError
from helpers import utc

from webapp.schedules import Schedule, ScheduleError, parse_schedule, validate_cron

SEED = 20260329
CASES = 4000
LATEST_DUE_CASES = 150
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",  # southern hemisphere: spring forward in October
    "Australia/Lord_Howe",  # a 30-minute shift
    "America/Santiago",  # changes at midnight: 00:00 itself is skipped
    "Asia/Tokyo",  # no DST
    "UTC",
)
SPAN = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC))
LEAP_DAY = datetime(2028, 2, 29, tzinfo=UTC)
# next_after gives up on a schedule with no match within 8 years (cronsim looks 50 ahead).
HORIZON = timedelta(days=8 * 365)



# -- the reference ---------------------------------------------------------------------------


def _fixed_time(expression: str) -> bool:
    minute, hour = expression.split()[:2]
    return not minute.startswith("*") and not hour.startswith("*")


def cronsim_after(expression: str, zone: str, after: datetime) -> datetime | None:
    """cronsim's first run time after `after`, as UTC (None: it finds none).

    cronsim can yield a time at or before `after`: for a fixed-time job it walks wall-clock
    times and drops the fold, so from the second pass of a repeated hour it yields that hour's
    first pass again. A scheduler must never be handed the past, so cronsim is advanced
    until it yields a time after `after`.
    """
    try:
        for when in CronSim(expression, after.astimezone(ZoneInfo(zone))):
            when = when.astimezone(UTC)
            if when > after:
                return when
    except CronSimError:  # cronsim rejects a day that no month has, e.g. `0 0 30 2 *`
        return None
    return None  # StopIteration: no match within cronsim's 50 years


@cache
def offset_changes(zone: str) -> tuple[datetime, ...]:
    """Every instant from 2024 to 2040 at which `zone` changes its UTC offset."""
    tz = ZoneInfo(zone)
    changes = []
    cursor, end = utc(2024, 1, 1), utc(2040, 1, 1)
    while cursor < end:
        step = cursor + timedelta(hours=6)
        if step.astimezone(tz).utcoffset() != cursor.astimezone(tz).utcoffset():
            low, high = cursor, step
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            changes.append(high.replace(microsecond=0))
        cursor = step
    return tuple(changes)


def _matches(expression: str, zone: str, instant: datetime) -> bool:
    """Whether cronsim runs the job at `instant` (whose local wall time it then matches)."""
    start = (instant - timedelta(seconds=1)).astimezone(ZoneInfo(zone))
    return next(CronSim(expression, start)).astimezone(UTC) == instant


def reference(expression: str, zone: str, after: datetime) -> datetime | None:
    """cronsim, restarted at each offset change for jobs that run at real instants.

    Such a job runs at every real instant whose local wall time matches. cronsim gets that
    right until it steps across an offset change (or starts within an hour after one); there
    its whole-hour steps can land beside the hour. In Australia/Lord_Howe (a 30-minute shift)
    they land on :30 for the rest of the day, so `* 3 * * *` would start at 03:30. In
    America/Santiago the change skips midnight, and cronsim starts that day at the skipped
    00:00: it yields it (as the instant of the change) or steps from it past 01:00. So from
    an offset change on, the minutes up to the next whole local hour are checked one by one
    with cronsim, and cronsim is restarted there.
    """
    found = cronsim_after(expression, zone, after)
    if _fixed_time(expression) or zone == "UTC":
        return found
    tz = ZoneInfo(zone)
    changes = offset_changes(zone)
    # cronsim starts by going back to the whole hour of `after`, which may lie before a change.
    index = bisect.bisect_right(changes, after - timedelta(hours=1))
    while found is not None and index < len(changes) and changes[index] <= found:
        # No run lies between `after` and this change (or `after` lies in its first hour).
        minute = max(changes[index], after.replace(second=0, microsecond=0) + timedelta(minutes=1))
        while minute.astimezone(tz).minute != 0:
            if _matches(expression, zone, minute):
                return minute
            minute += timedelta(minutes=1)
        found = cronsim_after(expression, zone, minute - timedelta(seconds=1))
        index += 1
    return found


# -- random cases ----------------------------------------------------------------------------


def _field(rng: random.Random, low: int, high: int) -> str:
    def number() -> str:
        return str(rng.randint(low, high))

    def span() -> str:
        first = rng.randint(low, high)
        return f"{first}-{rng.randint(first, high)}"

    draw = rng.random()
    if draw < 0.25:
        return "*"
    if draw < 0.40:
        return f"*/{rng.randint(1, max(2, (high - low) // 2))}"
    if draw < 0.60:
        return number()
    if draw < 0.72:
        return span()
    if draw < 0.82:
        # A stepped range spans two values at least: cronsim reads "a-a/n" as "a/n".
        first = rng.randint(low, high - 1)
        return f"{first}-{rng.randint(first + 1, high)}/{rng.randint(1, 5)}"
    return ",".join(number() if rng.random() < 0.6 else span() for _ in range(rng.randint(2, 4)))


def random_expression(rng: random.Random) -> str:
    minute = _field(rng, 0, 59)
    hour = _field(rng, 0, 23)
    if rng.random() < 0.3:  # the hours that DST changes touch
        hour = rng.choice(["0", "1", "2", "3", "23", "1-3", "2,3", "0-4/2", "22-23,0-2"])
    day = _field(rng, 1, 31)
    month = _field(rng, 1, 12) if rng.random() < 0.3 else "*"
    if rng.random() < 0.05:
        month = rng.choice(["FEB", "MAR-OCT", "oct,nov"])
    weekday = _field(rng, 0, 7 if rng.random() < 0.2 else 6)
    if rng.random() < 0.05:
        weekday = rng.choice(["MON-FRI", "sun", "SAT,SUN"])
    return f"{minute} {hour} {day} {month} {weekday}"


def random_instant(rng: random.Random, zone: str) -> datetime:
    draw = rng.random()
    changes = [c for c in offset_changes(zone) if SPAN[0] <= c < SPAN[1]]
    if draw < 0.6 and changes:
        shift = rng.choice([rng.randint(-3 * 3600, 3 * 3600), 60 * rng.randint(-90, 90)])
        instant = rng.choice(changes) + timedelta(seconds=shift)
    elif draw < 0.75:
        instant = LEAP_DAY + timedelta(seconds=rng.randint(-3 * 86400, 3 * 86400))
    else:
        instant = SPAN[0] + timedelta(
            seconds=rng.randint(0, int((SPAN[1] - SPAN[0]).total_seconds()))
        )
    choice = rng.random()
    if choice < 0.4:
        instant = instant.replace(second=0)  # a whole minute, often a run time itself
    elif choice < 0.5:
        instant += timedelta(microseconds=rng.randint(1, 999_999))
    return instant


def random_cases(count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        zone = rng.choice(ZONES)
        yield random_expression(rng), zone, random_instant(rng, zone)


def ours_or_none(expression: str, zone: str, after: datetime) -> datetime | None:
    try:
        return Schedule("cron", expression, zone).next_after(after)
    except ScheduleError:
        return None


def test_next_after_matches_cronsim_on_random_cases():
    failures = []
    raw_differences: dict[str, int] = {}
    for expression, zone, after in random_cases(CASES, SEED):
        ours = ours_or_none(expression, zone, after)
        expected = reference(expression, zone, after)
        if ours is None and expected is not None and expected - after > HORIZON:
            continue  # beyond next_after's horizon: it reports "never matches"
        if ours is not None:
            assert ours > after and ours.tzinfo is UTC
        if ours != expected:
            failures.append((expression, zone, after, ours, expected))
        elif ours != cronsim_after(expression, zone, after):
            raw_differences[zone] = raw_differences.get(zone, 0) + 1
    assert failures[:10] == []
    # Unrestarted cronsim differs only where its steps land beside the hour (see reference).
    assert set(raw_differences) <= {"Australia/Lord_Howe", "America/Santiago"}


def test_random_cases_are_valid_and_cover_both_modes_both_day_rules_and_dst():
    cases = list(random_cases(CASES, SEED))
    for expression, _, _ in cases[:500]:
        assert validate_cron(expression) == expression
    fixed = sum(_fixed_time(expression) for expression, _, _ in cases)
    either_day = sum(
        not (fields[2].startswith("*") or fields[4].startswith("*"))
        for fields in (expression.split() for expression, _, _ in cases)
    )
    near_change = sum(
        any(abs(after - change) < timedelta(hours=3) for change in offset_changes(zone))
        for _, zone, after in cases
    )
    assert CASES * 0.2 < fixed < CASES * 0.8
    assert CASES * 0.2 < either_day < CASES * 0.8
    assert near_change > CASES * 0.4


# -- latest_due ------------------------------------------------------------------------------


def naive_latest_due(schedule: Schedule, slot: datetime, moment: datetime, limit: int):
    latest = slot
    for _ in range(limit):
        following = schedule.next_after(latest)
        if following > moment:
            return latest
        latest = following
    return None  # too long a walk for a test


@pytest.fixture
def count_next_after(monkeypatch):
    calls = []
    original = Schedule.next_after

    def counted(self, after):
        calls.append(after)
        return original(self, after)

    monkeypatch.setattr(Schedule, "next_after", counted)
    return calls


def test_latest_due_equals_the_slot_by_slot_walk(count_next_after):
    rng = random.Random(SEED + 1)
    checked = 0
    while checked < LATEST_DUE_CASES:
        expression, zone = random_expression(rng), rng.choice(ZONES)
        schedule = Schedule("cron", expression, zone)
        try:
            slot = schedule.next_after(random_instant(rng, zone))
        except ScheduleError:
            continue
        downtime = timedelta(minutes=rng.choice([0, 1, 59, 60, 61, 1440]) + rng.random() * 10)
        if rng.random() < 0.7:
            downtime = timedelta(minutes=rng.expovariate(1 / rng.choice([30, 600, 20_000])))
        moment = slot + downtime
        expected = naive_latest_due(schedule, slot, moment, limit=400)
        if expected is None:
            continue
        count_next_after.clear()
        assert schedule.latest_due(slot, moment) == expected, (expression, zone, slot, moment)
        assert len(count_next_after) <= 40
        checked += 1


@pytest.mark.parametrize(
    ("expression", "zone", "slot", "downtime", "expected"),
    [
        (
            "* * * * *",
            "UTC",
            utc(2026, 5, 1, 12),
            timedelta(days=7, seconds=30),
            utc(2026, 5, 8, 12),
        ),
        ("* * * * *", "Europe/Berlin", utc(2026, 3, 1), timedelta(days=365), utc(2027, 3, 1)),
        ("* 0 * * *", "UTC", utc(2026, 5, 1), timedelta(days=3, hours=12), utc(2026, 5, 4, 0, 59)),
        ("*/5 * * * *", "UTC", utc(2026, 5, 1), timedelta(hours=2, minutes=4), utc(2026, 5, 1, 2)),
        (
            "0 12 29 2 *",
            "UTC",
            utc(2028, 2, 29, 12),
            timedelta(days=20 * 366),
            utc(2048, 2, 29, 12),
        ),
        (
            "30 2 * * *",
            "Europe/Berlin",
            utc(2026, 3, 28, 1, 30),
            timedelta(days=1),
            utc(2026, 3, 29, 1),
        ),
        (
            "30 * * * *",
            "America/New_York",
            utc(2026, 11, 1, 5, 30),
            timedelta(hours=1),
            utc(2026, 11, 1, 6, 30),
        ),
    ],
)
def test_latest_due_after_long_downtime_is_cheap(
    count_next_after, expression, zone, slot, downtime, expected
):
    assert Schedule("cron", expression, zone).latest_due(slot, slot + downtime) == expected
    assert len(count_next_after) <= 40


def test_latest_due_never_returns_a_time_before_the_slot():
    schedule = Schedule("cron", "0 * * * *", "UTC")
    slot = utc(2026, 5, 1, 10)
    assert schedule.latest_due(slot, slot) == slot
    assert schedule.latest_due(slot, slot - timedelta(hours=5)) == slot
    assert schedule.latest_due(slot, slot + timedelta(minutes=59)) == slot


# -- explicit cases --------------------------------------------------------------------------


def runs(expression: str, zone: str, after: datetime, count: int) -> list[datetime]:
    return Schedule("cron", expression, zone).next_runs(after, count)


def test_a_day_field_starting_with_a_star_makes_both_day_fields_required():
    # Mondays among the 1st, 6th, 11th, ... of a month.
    assert runs("0 0 */5 * 1", "UTC", utc(2026, 5, 1), 3) == [
        utc(2026, 5, 11),
        utc(2026, 6, 1),
        utc(2026, 7, 6),
    ]
    # `*` with weekdays: Monday to Friday, every week.
    assert runs("0 9 * * 1-5", "UTC", utc(2026, 5, 1, 10), 3) == [
        utc(2026, 5, 4, 9),
        utc(2026, 5, 5, 9),
        utc(2026, 5, 6, 9),
    ]
    assert runs("0 0 * * 1", "UTC", utc(2026, 5, 1), 2) == [utc(2026, 5, 4), utc(2026, 5, 11)]


def test_two_restricted_day_fields_need_only_one_to_match():
    # The 1st of a month and every Monday.
    assert runs("0 0 1 * 1", "UTC", utc(2026, 5, 26), 4) == [
        utc(2026, 6, 1),
        utc(2026, 6, 8),
        utc(2026, 6, 15),
        utc(2026, 6, 22),
    ]
    assert runs("0 0 1 * 1", "UTC", utc(2026, 6, 29), 2) == [utc(2026, 7, 1), utc(2026, 7, 6)]
    # A day-of-month field naming every day matches every day, so does the OR.
    assert runs("0 0 1-31 * 1", "UTC", utc(2026, 5, 1), 2) == [utc(2026, 5, 2), utc(2026, 5, 3)]


def test_an_equal_range_is_its_one_value():
    # cronie reads "8-8" as 8 and "5-5/10" as 5 (croniter would read every hour; cronsim
    # reads "5-5/10" as 5-59/10).
    assert runs("0 8-8 * * *", "UTC", utc(2026, 5, 1), 2) == [
        utc(2026, 5, 1, 8),
        utc(2026, 5, 2, 8),
    ]
    assert runs("5-5/10 * * * *", "UTC", utc(2026, 5, 1), 2) == [
        utc(2026, 5, 1, 0, 5),
        utc(2026, 5, 1, 1, 5),
    ]
    assert runs("0 0 * * 7-7", "UTC", utc(2026, 5, 1), 1) == [utc(2026, 5, 3)]  # Sunday


def test_a_fixed_time_skipped_by_spring_forward_runs_at_the_first_minute_after_the_gap():
    # 2026-03-29 02:00 CET becomes 03:00 CEST in Berlin.
    assert runs("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1),  # 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]
    # 2026-10-04 02:00 becomes 02:30 on Lord Howe Island.
    assert runs("15 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 12), 1) == [
        utc(2026, 10, 3, 15, 30)  # 02:30 +11:00
    ]
    assert cronsim_after("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)


def test_a_fixed_time_repeated_by_fall_back_runs_once_at_its_first_pass():
    # 2026-10-25 03:00 CEST becomes 02:00 CET in Berlin: 02:30 happens twice.
    schedule = Schedule("cron", "30 2 * * *", "Europe/Berlin")
    assert schedule.next_runs(utc(2026, 10, 24, 12), 2) == [
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 26, 1, 30),  # 02:30 CET the next day
    ]
    # From the second pass (02:15 CET) the day's run is over. cronsim yields 00:30 UTC here,
    # before the instant asked about.
    second_pass = utc(2026, 10, 25, 1, 15)
    assert schedule.next_after(second_pass) == utc(2026, 10, 26, 1, 30)
    assert (
        next(CronSim("30 2 * * *", second_pass.astimezone(ZoneInfo("Europe/Berlin")))) < second_pass
    )


def test_a_wildcard_job_runs_at_both_passes_of_a_repeated_hour():
    # 2026-11-01 02:00 EDT becomes 01:00 EST in New York.
    assert runs("30 * * * *", "America/New_York", utc(2026, 11, 1, 4), 4) == [
        utc(2026, 11, 1, 4, 30),  # 00:30 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT
        utc(2026, 11, 1, 6, 30),  # 01:30 EST
        utc(2026, 11, 1, 7, 30),  # 02:30 EST
    ]
    assert parse_schedule("every_hour", "Europe/Berlin").next_runs(utc(2026, 10, 24, 23), 4) == [
        utc(2026, 10, 25, 0),  # 02:00 CEST
        utc(2026, 10, 25, 1),  # 02:00 CET
        utc(2026, 10, 25, 2),
        utc(2026, 10, 25, 3),
    ]


def test_a_wildcard_job_skips_the_times_spring_forward_removes():
    # Berlin, 2026-03-29: after 01:45 CET comes 03:00 CEST.
    assert runs("*/15 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 40), 3) == [
        utc(2026, 3, 29, 0, 45),  # 01:45 CET
        utc(2026, 3, 29, 1),  # 03:00 CEST
        utc(2026, 3, 29, 1, 15),
    ]
    assert runs("0 */6 * * *", "Europe/Berlin", utc(2026, 3, 28, 23), 2) == [
        utc(2026, 3, 29, 4),  # 06:00 CEST
        utc(2026, 3, 29, 10),
    ]


def test_where_cronsim_steps_beside_the_hour_the_wall_clock_decides():
    # Lord Howe, 2026-10-04 02:00 +10:30 becomes 02:30 +11:00; 03:00 and 03:30 both exist,
    # while cronsim, stepping whole real hours from midnight, first yields 03:30.
    assert runs("*/30 3 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 12), 2) == [
        utc(2026, 10, 3, 16),  # 03:00 +11:00
        utc(2026, 10, 3, 16, 30),
    ]
    assert cronsim_after("*/30 3 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 12)) == utc(
        2026, 10, 3, 16, 30
    )
    # Santiago, Sunday 2026-09-06: 00:00 -04 becomes 01:00 -03, so that Sunday has no hour 0;
    # cronsim yields its skipped midnight (as 04:00 UTC, the instant of the change).
    assert runs("*/30 0 * * 0", "America/Santiago", utc(2026, 9, 5, 12), 2) == [
        utc(2026, 9, 13, 3),  # the next Sunday, 00:00 -03
        utc(2026, 9, 13, 3, 30),
    ]
    assert cronsim_after("*/30 0 * * 0", "America/Santiago", utc(2026, 9, 5, 12)) == utc(
        2026, 9, 6, 4
    )


def test_29_february():
    assert runs("0 12 29 2 *", "UTC", utc(2026, 1, 1), 2) == [
        utc(2028, 2, 29, 12),
        utc(2032, 2, 29, 12),
    ]
    assert runs("0 12 29 2 *", "Europe/Berlin", utc(2028, 2, 29, 11), 1) == [utc(2032, 2, 29, 11)]
    assert runs("*/20 23 29 2 *", "Australia/Sydney", utc(2027, 6, 1), 3) == [
        utc(2028, 2, 29, 12),  # 23:00 +11:00
        utc(2028, 2, 29, 12, 20),
        utc(2028, 2, 29, 12, 40),
    ]


@pytest.mark.parametrize("expression", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "* * 30 2 *"])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_a_schedule_that_never_matches_raises(expression, zone):
    with pytest.raises(ScheduleError):
        Schedule("cron", expression, zone).next_after(utc(2026, 5, 1))
    with pytest.raises(ScheduleError, match="never matches"):
        parse_schedule(expression, zone)
