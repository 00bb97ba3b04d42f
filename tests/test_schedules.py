"""Schedules at fixed instants: presets, cron, timezones, both DST changes, 29 February."""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
import time_machine
from helpers import utc

from webapp.schedules import ScheduleError, parse_schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")



@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("every_6_hours", ("interval", "every_6_hours")),
        ("0 8 * * *", ("cron", "0 8 * * *")),
        ({"type": "interval", "value": "daily"}, ("interval", "daily")),
        ({"type": "cron", "expression": "*/15  9-17 * * 1-5"}, ("cron", "*/15 9-17 * * 1-5")),
        ("daily at 08:30", ("cron", "30 8 * * *")),
    ],
)
def test_every_spelling_is_stored_the_same_way(spelling, expected):
    schedule = parse_schedule(spelling)
    assert (schedule.type, schedule.value) == expected


def test_presets_fire_at_their_documented_hours():
    start = utc(2026, 5, 1, 3, 17)
    assert parse_schedule("every_hour").next_runs(start, 2) == [utc(2026, 5, 1, 4), utc(2026, 5, 1, 5)]
    assert [t.hour for t in parse_schedule("every_6_hours").next_runs(start, 4)] == [6, 12, 18, 0]
    assert [t.hour for t in parse_schedule("every_12_hours").next_runs(start, 2)] == [12, 0]
    assert parse_schedule("daily").next_after(start) == utc(2026, 5, 2, 0, 0)


def test_next_run_is_strictly_after_the_given_instant():
    assert parse_schedule("every_hour").next_after(utc(2026, 5, 1, 4)) == utc(2026, 5, 1, 5)


def test_daily_job_in_a_zone_runs_at_local_time_stored_as_utc():
    schedule = parse_schedule("0 8 * * *", "Europe/Berlin")
    winter = schedule.next_after(utc(2026, 1, 10, 12))
    summer = schedule.next_after(utc(2026, 7, 10, 12))
    assert winter == utc(2026, 1, 11, 7) and summer == utc(2026, 7, 11, 6)
    assert winter.astimezone(BERLIN).hour == summer.astimezone(BERLIN).hour == 8


def test_daily_job_runs_once_on_the_spring_forward_day_even_in_the_skipped_hour():
    # 2026-03-08 02:00 does not exist in New York: clocks jump from 02:00 to 03:00.
    schedule = parse_schedule("30 2 * * *", "America/New_York")
    runs = schedule.next_runs(utc(2026, 3, 6, 12), 4)
    local_days = [t.astimezone(NEW_YORK).date() for t in runs]
    assert len(set(local_days)) == 4
    assert [d.day for d in local_days] == [7, 8, 9, 10]
    # The skipped 02:30 runs at 03:00 EDT, the first minute after the gap (cron's rule).
    assert runs[1] == utc(2026, 3, 8, 7, 0)
    assert runs[1].astimezone(NEW_YORK).strftime("%H:%M") == "03:00"


def test_daily_job_runs_once_on_the_fall_back_day_in_the_repeated_hour():
    # 2026-11-01 01:00–02:00 happens twice in New York.
    schedule = parse_schedule("30 1 * * *", "America/New_York")
    runs = schedule.next_runs(utc(2026, 10, 31, 12), 3)
    assert [t.astimezone(NEW_YORK).day for t in runs] == [1, 2, 3]
    assert runs[0] == utc(2026, 11, 1, 5, 30)  # the first 01:30 (EDT), not the second


def test_after_the_first_pass_of_a_repeated_hour_the_next_run_is_the_next_day():
    schedule = parse_schedule("30 1 * * *", "America/New_York")
    second_pass = utc(2026, 11, 1, 6, 15)  # 01:15 EST, after 01:30 EDT already ran
    assert schedule.next_after(second_pass) == utc(2026, 11, 2, 6, 30)


def test_hourly_schedule_never_returns_the_same_instant_twice_across_dst():
    schedule = parse_schedule("every_hour", "Europe/Berlin")
    runs = schedule.next_runs(utc(2026, 3, 28, 20), 30)
    assert len(runs) == len(set(runs))
    assert all(b > a for a, b in pairwise(runs))


def test_29_february_runs_only_in_leap_years():
    schedule = parse_schedule("0 12 29 2 *")
    assert schedule.next_runs(utc(2026, 1, 1), 2) == [utc(2028, 2, 29, 12), utc(2032, 2, 29, 12)]


def test_schedule_description_in_words():
    assert parse_schedule("0 8 * * *").describe() == "At 08:00"
    assert parse_schedule("every_6_hours").describe() == "Every 6 hours"
    assert parse_schedule("0 8 * * *", "Europe/Berlin").describe() == "At 08:00 (Europe/Berlin)"


@pytest.mark.parametrize(
    ("spelling", "zone", "field", "fragment"),
    [
        ("61 * * * *", "UTC", "schedule", "minute field '61'"),
        ("0 25 * * *", "UTC", "schedule", "hour field '25'"),
        ("0 0 32 * *", "UTC", "schedule", "day of month field '32'"),
        ("0 0 1 13 *", "UTC", "schedule", "month field '13'"),
        ("0 0 * * 9", "UTC", "schedule", "day of week field '9'"),
        ("* * *", "UTC", "schedule", "has 3"),
        ("0 0 30 2 *", "UTC", "schedule", "never matches"),
        ("weekly", "UTC", "schedule", "Unknown preset"),
        ("daily at 25:00", "UTC", "schedule", "not a time of day"),
        ({"type": "interval", "value": "hourly"}, "UTC", "schedule", "Unknown interval"),
        ({"type": "cron"}, "UTC", "schedule", "expression"),
        (42, "UTC", "schedule", "preset name"),
        ("daily", "Mars/Olympus", "timezone", "Unknown timezone"),
        ("daily", "Europe/../etc", "timezone", "Unknown timezone"),
    ],
)
def test_invalid_schedules_name_the_fault(spelling, zone, field, fragment):
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(spelling, zone)
    assert caught.value.field == field
    assert fragment in caught.value.message


def test_coalescing_picks_the_latest_missed_slot():
    schedule = parse_schedule("every_hour")
    latest = schedule.latest_due(utc(2026, 5, 1, 1), utc(2026, 5, 1, 4, 30))
    assert latest == utc(2026, 5, 1, 4)


def test_coalescing_after_a_week_of_downtime_picks_the_last_minute():
    schedule = parse_schedule("* * * * *", "Europe/Berlin")
    latest = schedule.latest_due(utc(2026, 3, 25, 12), utc(2026, 4, 1, 12, 0, 40))
    assert latest == utc(2026, 4, 1, 12)


def test_preview_from_now_uses_the_clock():
    with time_machine.travel(utc(2026, 2, 28, 23, 59, 30), tick=False):
        from webapp.timeutil import now

        runs = parse_schedule("0 0 * * *").next_runs(now(), 2)
    assert runs == [utc(2026, 3, 1), utc(2026, 3, 2)]
    assert runs[1] - runs[0] == timedelta(days=1)
