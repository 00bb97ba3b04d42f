"""Schedules: presets and 5-field cron evaluated in a job's own timezone.

Pure helpers with no Flask import. Times go in and come out as aware UTC; the cron is
walked in local wall-clock time and each match is converted back, which is what makes a
daily job run once per local day across both DST changes:
- a wall time that does not exist (spring forward) runs at the same offset as before the
  change, i.e. one hour later on the clock;
- a wall time that happens twice (fall back) runs only at its first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cron_descriptor import Options, get_description
from croniter import croniter

INTERVALS = {
    "every_hour": "0 * * * *",
    "every_6_hours": "0 */6 * * *",
    "every_12_hours": "0 */12 * * *",
    "daily": "0 0 * * *",
}
INTERVAL_LABELS = {
    "every_hour": "Every hour",
    "every_6_hours": "Every 6 hours",
    "every_12_hours": "Every 12 hours",
    "daily": "Daily at 00:00",
}
FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-6 (Sunday is 0) or SUN-SAT"),
)
_DAILY_AT = re.compile(r"^\s*daily at\s+(\d{1,2}):(\d{2})\s*$", re.IGNORECASE)
# A schedule that has no match within this many years never runs in practice.
_MAX_YEARS_BETWEEN_MATCHES = 8


class ScheduleError(ValueError):
    """A schedule or timezone that cannot be used; `field` names the part at fault."""

    def __init__(self, message: str, field: str = "schedule"):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Schedule:
    type: str  # "interval" | "cron"
    value: str  # an interval name or a cron expression
    timezone: str = "UTC"

    @property
    def expression(self) -> str:
        return INTERVALS[self.value] if self.type == "interval" else self.value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        if self.type == "interval":
            text = INTERVAL_LABELS[self.value]
        else:
            text = describe_cron(self.value)
        if self.timezone != "UTC":
            text += f" ({self.timezone})"
        return text

    def to_api(self) -> dict:
        key = "value" if self.type == "interval" else "expression"
        return {"type": self.type, key: self.value, "description": self.describe()}

    def next_after(self, after: datetime) -> datetime:
        """The first run time strictly after `after` (aware), as aware UTC."""
        zone = self.zone
        after = after.astimezone(UTC)
        local_start = after.astimezone(zone).replace(tzinfo=None)
        walker = croniter(
            self.expression, local_start, max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES
        )
        # A few candidates can map to an instant at or before `after`: the first pass of a
        # repeated hour, or a skipped wall time folded onto the next real one.
        for _ in range(1000):
            wall = walker.get_next(datetime)
            candidate = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
            if candidate > after:
                return candidate
        raise ScheduleError("This schedule never matches a real time.")

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        times: list[datetime] = []
        cursor = after
        for _ in range(count):
            cursor = self.next_after(cursor)
            times.append(cursor)
        return times

    def latest_due(self, slot: datetime, moment: datetime) -> datetime:
        """The last slot at or before `moment`, starting from a due `slot` (coalescing)."""
        latest = slot
        for _ in range(100_000):
            following = self.next_after(latest)
            if following > moment:
                return latest
            latest = following
        return latest


def describe_cron(expression: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return get_description(expression, options)
    except Exception:  # the describer is a nicety; a valid cron always gets a schedule
        return f"Cron {expression}"


def validate_timezone(name: str | None) -> str:
    if name is None or str(name).strip() == "":
        return "UTC"
    if not isinstance(name, str):
        raise ScheduleError("Timezone must be an IANA name such as Europe/Berlin.", "timezone")
    name = name.strip()
    if name not in _zones():
        raise ScheduleError(
            f"Unknown timezone {name!r}: use an IANA name such as Europe/Berlin or UTC.",
            "timezone",
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"Unknown timezone {name!r}.", "timezone") from None
    return name


_zone_cache: set[str] = set()


def _zones() -> set[str]:
    if not _zone_cache:
        _zone_cache.update(available_timezones())
        _zone_cache.add("UTC")
    return _zone_cache


def timezone_names() -> list[str]:
    return sorted(_zones())


def validate_cron(expression: str) -> str:
    text = " ".join(str(expression).split())
    if not text:
        raise ScheduleError("Enter a schedule: a preset or a 5-field cron expression.")
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError(
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week); "
            f"this one has {len(fields)}."
        )
    for index, (label, allowed) in enumerate(FIELDS):
        probe = ["*"] * 5
        probe[index] = fields[index]
        if not croniter.is_valid(" ".join(probe)):
            raise ScheduleError(
                f"The {label} field {fields[index]!r} is not valid: use {allowed}, "
                f"with * , - and / as in cron."
            )
    if not croniter.is_valid(text):
        raise ScheduleError(f"{text!r} is not a valid cron expression.")
    return text


def parse_schedule(value, timezone: str | None = "UTC") -> Schedule:
    """Accept every spelling of API.md (and the form's "daily at HH:MM"); raise ScheduleError."""
    zone = validate_timezone(timezone)
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "interval":
            return _checked(_interval(value.get("value")), zone)
        if kind == "cron":
            expression = value.get("expression")
            if not isinstance(expression, str):
                raise ScheduleError("A cron schedule needs an 'expression' string.")
            return _checked(Schedule("cron", validate_cron(expression)), zone)
        raise ScheduleError("Schedule 'type' must be 'interval' or 'cron'.")
    if not isinstance(value, str):
        raise ScheduleError("Schedule must be a preset name, a cron expression or an object.")
    text = value.strip()
    if text in INTERVALS:
        return _checked(Schedule("interval", text), zone)
    daily_at = _DAILY_AT.match(text)
    if daily_at:
        hour, minute = int(daily_at.group(1)), int(daily_at.group(2))
        if hour > 23 or minute > 59:
            raise ScheduleError(f"{hour:02d}:{minute:02d} is not a time of day (00:00 to 23:59).")
        return _checked(Schedule("cron", f"{minute} {hour} * * *"), zone)
    if " " not in text and text:
        raise ScheduleError(
            f"Unknown preset {text!r}: use every_hour, every_6_hours, every_12_hours, daily "
            f"or a 5-field cron expression."
        )
    return _checked(Schedule("cron", validate_cron(text)), zone)


def _interval(name) -> Schedule:
    if not isinstance(name, str) or name not in INTERVALS:  # a list or dict is unhashable
        raise ScheduleError(
            f"Unknown interval {name!r}: use every_hour, every_6_hours, every_12_hours or daily."
        )
    return Schedule("interval", name)


def _checked(schedule: Schedule, zone: str) -> Schedule:
    schedule = Schedule(schedule.type, schedule.value, zone)
    try:
        schedule.next_after(datetime.now(UTC))
    except Exception:
        raise ScheduleError(
            f"{schedule.expression!r} never matches a date (for example 30 February)."
        ) from None
    return schedule


def humanize_delta(delta: timedelta) -> str:
    """'in 3 h', '5 min ago': short relative times for the dashboard."""
    seconds = int(delta.total_seconds())
    future = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        amount = f"{seconds} s"
    elif seconds < 3600:
        amount = f"{seconds // 60} min"
    elif seconds < 86400 * 2:
        amount = f"{seconds // 3600} h"
    else:
        amount = f"{seconds // 86400} d"
    if seconds < 5:
        return "now"
    return f"in {amount}" if future else f"{amount} ago"
