"""Schedules: presets and 5-field cron evaluated in a job's own timezone.

Pure helpers with no Flask import. Times go in and come out as aware UTC, and next-run times
follow crontab(5) as cronie implements it (tests/test_cron_exact.py checks them against
cronsim):
- day of month and day of week: if either field starts with `*` both must match, otherwise
  either one is enough (`0 0 1 * 1` is the 1st and every Monday, `0 0 */5 * 1` only the
  Mondays among the 1st, 6th, 11th, ...);
- a job at fixed times (neither minute nor hour starts with `*`, e.g. `30 2 * * *`) is walked
  in local wall-clock time: a time that a spring-forward gap skips runs at the first real
  minute after the gap (02:30 in Berlin on that day runs at 03:00), and a time that happens
  twice (fall back) runs once, at its first pass;
- any other job (`*/15 * * * *`, `0 * * * *`, `0 */6 * * *`) runs at every real instant whose
  local wall-clock time matches: a skipped time does not occur, a repeated one occurs at both
  passes.
A run time is always strictly after the instant asked about, never in the past.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cron_descriptor import Options, get_description
from croniter import CroniterBadDateError, croniter

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
_UTC_NAMES = frozenset({"UTC", "Etc/UTC"})
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
# Offset changes are found by probing the offset at most this far apart (and bisecting). No
# offset in tzdata since 1970 has lasted less than about a week, so none is stepped over.
_OFFSET_PROBE = timedelta(days=1)
# A spring-forward gap is at most a day long (Samoa skipped 30 December 2011).
_LONGEST_GAP_MINUTES = 24 * 60 + 60
# Offset periods walked through in one search (8 years of DST changes, with room to spare).
_MAX_OFFSET_PERIODS = 200
# Wall-clock matches skipped in one search because they fall in the first pass of a repeated
# hour that is already over (at most a couple of hours of minutes).
_MAX_PAST_MATCHES = 10_000
# latest_due looks back from `moment` in these growing windows for the last slot.
_LOOK_BACK = (
    timedelta(minutes=1),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=32),
    timedelta(days=366),
    timedelta(days=8 * 366),
)


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

    @property
    def _fixed_time(self) -> bool:
        """Neither minute nor hour starts with `*`: cron walks such a job on the wall clock."""
        minute, hour = self.expression.split()[:2]
        return not minute.startswith("*") and not hour.startswith("*")

    def _walker(self) -> croniter:
        # Parsing is most of croniter's cost: copy a parsed one (walking only reads the
        # parsed fields; each copy keeps its own position).
        return copy.copy(_parsed_walker(self.expression))

    def next_after(self, after: datetime) -> datetime:
        """The first run time strictly after `after` (aware), as aware UTC."""
        after = after.astimezone(UTC)
        walker = self._walker()
        if self.timezone in _UTC_NAMES:
            return _next_wall(walker, after.replace(tzinfo=None)).replace(tzinfo=UTC)
        if self._fixed_time:
            return _next_on_the_wall_clock(walker, self.zone, after)
        return _next_real_instant(walker, self.zone, after)

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        times: list[datetime] = []
        cursor = after
        for _ in range(count):
            cursor = self.next_after(cursor)
            times.append(cursor)
        return times

    def latest_due(self, slot: datetime, moment: datetime) -> datetime:
        """The last slot at or before `moment`, starting from a due `slot` (coalescing).

        The same as following next_after from `slot` while it stays at or before `moment`, but
        it takes a few dozen next_after calls at most, whatever the downtime: look back from
        `moment` in growing windows for a slot, then bisect between the latest slot known and
        the earliest instant known to have no slot up to `moment`.
        """
        known = self.next_after(slot)
        if known > moment:
            return slot
        upper = moment  # the answer lies in [known, upper]: no slot is in (upper, moment]
        for window in _LOOK_BACK:
            start = moment - window
            if start <= known:
                break
            found = self.next_after(start)
            if found <= moment:
                known = found
                break
            upper = start
        while upper - known > _MINUTE:
            middle = known + (upper - known) / 2
            found = self.next_after(middle)
            if found <= moment:
                known = found
            else:
                upper = middle
        while True:  # at most a step or two: slots are whole minutes
            following = self.next_after(known)
            if following > moment:
                return known
            known = following


_FIELD_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_FIELD_NAMES = (
    {},
    {},
    {},
    {name: number for number, name in enumerate(_MONTH_NAMES, start=1)},
    {name: number for number, name in enumerate(_DAY_NAMES)},
)
_EVERY = (
    set(range(60)),
    set(range(24)),
    set(range(1, 32)),
    set(range(1, 13)),
    set(range(7)),
)


@lru_cache(maxsize=512)
def _parsed_walker(expression: str) -> croniter:
    meaning, day_or = _cron_meaning(expression)
    return croniter(
        meaning,
        datetime(2000, 1, 1),
        day_or=day_or,
        max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES,
    )


@lru_cache(maxsize=512)
def _cron_meaning(expression: str) -> tuple[str, bool]:
    """The expression as croniter should walk it to mean what crontab(5) says, and day_or.

    crontab(5): if day of month or day of week starts with `*`, a day must match both;
    otherwise either is enough. Each field is handed to croniter as the plain list of values
    cron reads in it, because croniter reads a few spellings its own way ("8-8" as every hour,
    a day-of-week field of all seven days as `*`, which would turn OR into AND). Anything
    outside the standard syntax (croniter's extensions) is passed on as written.
    """
    fields = expression.split()
    day_or = not (fields[2].startswith("*") or fields[4].startswith("*"))
    values = [_field_values(text, index) for index, text in enumerate(fields)]
    if any(field is None for field in values):
        return expression, day_or
    if day_or and (values[2] == _EVERY[2] or values[4] == _EVERY[4]):
        values[2], values[4] = _EVERY[2], _EVERY[4]  # one side matches every day: so does OR
    parts = [
        "*" if field == _EVERY[index] else ",".join(str(value) for value in sorted(field))
        for index, field in enumerate(values)
    ]
    return " ".join(parts), day_or


def _field_values(text: str, index: int) -> set[int] | None:
    """The values a standard cron field means (Sunday as 0), or None if it is not standard."""
    low, high = _FIELD_BOUNDS[index]
    values: set[int] = set()
    for term in text.lower().split(","):
        body, slash, step_text = term.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                return None
            step = int(step_text)
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _field_value(first, index), _field_value(last, index)
        else:
            start = _field_value(body, index)
            end = high if slash else start  # "5/15" is 5-59/15, as in cronie and croniter
        if start is None or end is None or not low <= start <= end <= high:
            return None
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def _field_value(text: str, index: int) -> int | None:
    if text.isdigit():
        return int(text)
    return _FIELD_NAMES[index].get(text)


def _next_wall(walker: croniter, wall: datetime) -> datetime:
    """The first wall-clock time (naive) that matches the cron strictly after `wall`."""
    try:
        return walker.get_next(datetime, start_time=wall)
    except CroniterBadDateError:
        raise ScheduleError("This schedule never matches a real time.") from None


def _next_on_the_wall_clock(walker: croniter, zone: ZoneInfo, after: datetime) -> datetime:
    """Fixed-time jobs: walk local wall-clock times, as cron does.

    A skipped time moves to the first real minute after the gap; a repeated time is taken at
    its first pass (fold=0), so when `after` lies in the second pass of a repeated hour the
    matches in that hour are already over and the walk goes on past them.
    """
    wall = after.astimezone(zone).replace(tzinfo=None)
    for _ in range(_MAX_PAST_MATCHES):
        wall = _first_real_minute(_next_wall(walker, wall), zone)
        candidate = wall.replace(tzinfo=zone).astimezone(UTC)
        if candidate > after:
            return candidate
    raise ScheduleError("This schedule never matches a real time.")


def _first_real_minute(wall: datetime, zone: ZoneInfo) -> datetime:
    """`wall` if it exists in `zone`, otherwise the first minute after the gap that skips it."""
    for _ in range(_LONGEST_GAP_MINUTES):
        if wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
            return wall
        wall += _MINUTE
    raise ScheduleError("This schedule never matches a real time.")


def _next_real_instant(walker: croniter, zone: ZoneInfo, after: datetime) -> datetime:
    """Other jobs: the first real instant after `after` whose local wall-clock time matches.

    Within one offset period local time is UTC plus a constant, so the first match there is
    found on the wall clock; if it lies beyond the period's end, the search goes on from the
    instant the offset changes (which may itself match).
    """
    cursor, strictly = after, True
    for _ in range(_MAX_OFFSET_PERIODS):
        offset = cursor.astimezone(zone).utcoffset()
        wall = (cursor + offset).replace(tzinfo=None)
        if not strictly:
            wall -= _SECOND  # the instant of the change itself may match
        candidate = (_next_wall(walker, wall) - offset).replace(tzinfo=UTC)
        change = _offset_change(zone, cursor, candidate, offset)
        if change is None:
            return candidate
        cursor, strictly = change, False
    raise ScheduleError("This schedule never matches a real time.")


def _offset_change(
    zone: ZoneInfo, start: datetime, end: datetime, offset: timedelta
) -> datetime | None:
    """The first instant in (start, end] whose UTC offset in `zone` is not `offset`, if any."""
    low = start.replace(microsecond=0)  # offsets change on whole seconds
    while low < end:
        high = min(low + _OFFSET_PROBE, end)
        if high.astimezone(zone).utcoffset() != offset:
            while high - low > _SECOND:
                middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None


def describe_cron(expression: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return get_description(expression, options)
    except Exception:  # noqa: BLE001 - the describer is a nicety; a valid cron still works
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
    except (ValueError, TypeError, OverflowError):  # ScheduleError and croniter's errors
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
