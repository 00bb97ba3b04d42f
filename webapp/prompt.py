"""Prompt → query plan: terms, "quoted phrases", OR groups, -exclusions, date hints and the
sources a prompt names ("… on Reddit").

Pure helper with no Flask import. A record matches the plan when every term and phrase of
at least one OR group appears in its title or text, and no exclusion does.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Words people write around what they are looking for ("mentions of acme on reddit today").
FILLER = frozenset(
    """
    a an and any are about all as at be by can did do does find for from get give had has
    have how i in into is it its last latest me mention mentioned mentions my new news of on
    or our people post posts say said says show some talk talked talking that the their them
    there these this those to today track tracking us via was we were what when where which
    who why will with yesterday you your week month past hours hour days day many much often
    times
    """.split()
)
# Source names after "on"/"from"/"via" say where to look, not what to look for.
SOURCE_WORDS = frozenset(
    "reddit hackernews hn youtube x twitter mastodon bluesky github news rss web".split()
)
_SOURCE_LEADS = frozenset(("on", "from", "via", "in"))
SOURCE_ALIASES = {"hn": "hackernews", "twitter": "x"}
# "last 24 hours", "past 2 weeks", "last 7d" name a time window, not words to look for.
_WINDOW_LEADS = frozenset(("last", "past"))
_WINDOW_AMOUNT = re.compile(r"^\d{1,4}(h|d|w)?$")
_WINDOW_UNITS = frozenset("h hr hrs hour hours d day days w wk wks week weeks month months".split())
_UNIT_LETTER = {
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "h"),
    **dict.fromkeys(("d", "day", "days"), "d"),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), "w"),
    **dict.fromkeys(("month", "months"), "m"),
}
_SPELLED = {"an": 1, "a": 1, "one": 1, "two": 2, "three": 3, "seven": 7, "ten": 10}
_WINDOW_LABELS = {"today": "today", "yesterday": "yesterday", "this_week": "this week"}
_TOKEN = re.compile(r'-?"[^"]*"?|\S+')
_EDGE_PUNCT = re.compile(r"^[^\w#@$+]+|[^\w#@$+]+$", re.UNICODE)


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass
class QueryPlan:
    groups: list[list[str]] = field(default_factory=list)  # OR of AND-groups
    exclusions: list[str] = field(default_factory=list)
    # A date hint: {"last": "24h"} or {"calendar": "today" | "yesterday" | "this_week"}.
    window: dict | None = None
    sources: list[str] = field(default_factory=list)  # source ids the prompt names

    @property
    def is_empty(self) -> bool:
        return not any(self.groups)

    def query_string(self) -> str:
        """The plan as a search-engine query: phrases quoted, groups joined with OR."""

        def quote(term: str) -> str:
            return f'"{term}"' if " " in term else term

        parts = [" ".join(quote(t) for t in group) for group in self.groups if group]
        text = " OR ".join(parts)
        if self.exclusions:
            text += " " + " ".join(f"-{quote(t)}" for t in self.exclusions)
        return text.strip()

    def describe(self) -> str:
        if self.is_empty and not self.exclusions and not self.window and not self.sources:
            return "Searching for: everything the sources return"
        wanted = " OR ".join(
            " ".join(f'"{t}"' if " " in t else t for t in group) for group in self.groups if group
        )
        text = f"Searching for: {wanted or 'everything'}"
        if self.exclusions:
            text += ", excluding " + ", ".join(self.exclusions)
        if self.sources:
            text += ", on " + ", ".join(self.sources)
        if self.window:
            text += ", " + describe_window(self.window)
        return text

    def matches(self, *texts: str | None) -> bool:
        # Whitespace collapsed as in the plan's phrases, so "Acme\n  Corp" matches "acme corp".
        haystack = " ".join(normalise(" ".join(t for t in texts if t)).split())
        if any(_contains(haystack, word) for word in self.exclusions):
            return False
        if self.is_empty:
            return True
        return any(
            all(_contains(haystack, term) for term in group) for group in self.groups if group
        )


def _contains(haystack: str, needle: str) -> bool:
    if not needle:
        return True
    pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
    return re.search(pattern, haystack) is not None


def _time_window(tokens: list[str]) -> tuple[set[int], dict | None]:
    """The date hint of a prompt and the positions of its words, which no record has to contain.

    "last 24 hours", "past 7 days", "last 2w", "last week", "today", "yesterday", "this week";
    the first hint wins.
    """
    words = [_EDGE_PUNCT.sub("", normalise(token)) for token in tokens]
    skip: set[int] = set()
    window: dict | None = None

    def found(value: dict, *positions: int) -> None:
        nonlocal window
        skip.update(positions)
        if window is None:
            window = value

    for index, word in enumerate(words):
        following = words[index + 1] if index + 1 < len(words) else ""
        after = words[index + 2] if index + 2 < len(words) else ""
        if word in ("today", "yesterday") and not tokens[index].startswith("-"):
            found({"calendar": word}, index)
        elif word == "this" and following == "week":
            found({"calendar": "this_week"}, index, index + 1)
        elif word in _WINDOW_LEADS and following:
            amount = _WINDOW_AMOUNT.match(following)
            if amount and amount.group(1):
                found({"last": following}, index, index + 1)
            elif (amount or following in _SPELLED) and after in _WINDOW_UNITS:
                number = int(following) if amount else _SPELLED[following]
                found(_relative(number, _UNIT_LETTER[after]), index, index + 1, index + 2)
            elif following in _WINDOW_UNITS:
                found(_relative(1, _UNIT_LETTER[following]), index, index + 1)
    return skip, window


def _relative(number: int, unit: str) -> dict:
    if unit == "m":  # a month is taken as 30 days
        return {"last": f"{number * 30}d"}
    if unit == "h":
        return {"last": f"{number}h"}
    return {"last": f"{number}{unit}"}


def describe_window(window: dict) -> str:
    if "calendar" in window:
        return _WINDOW_LABELS[window["calendar"]]
    amount, unit = int(window["last"][:-1]), window["last"][-1]
    name = {"h": "hour", "d": "day", "w": "week"}[unit]
    if amount == 1:
        return f"in the last {name}"
    return f"in the last {amount} {name}s"


def resolve_window(window: dict, moment: datetime, zone: str = "UTC") -> tuple[datetime, datetime | None]:
    """The (since, until) of a date hint at `moment`; calendar days in the given timezone."""
    if "last" in window:
        amount, unit = int(window["last"][:-1]), window["last"][-1]
        return moment - timedelta(**{{"h": "hours", "d": "days", "w": "weeks"}[unit]: amount}), None
    local = moment.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if window["calendar"] == "today":
        return midnight, None
    if window["calendar"] == "yesterday":
        return midnight - timedelta(days=1), midnight
    return midnight - timedelta(days=local.weekday()), None


def parse_prompt(prompt: str) -> QueryPlan:
    plan = QueryPlan(groups=[[]])
    previous = ""
    tokens = _TOKEN.findall(prompt or "")
    window_positions, plan.window = _time_window(tokens)
    for index, token in enumerate(tokens):
        lead, previous = previous, normalise(token)
        if index in window_positions:
            continue
        negative = token.startswith("-") and len(token) > 1
        body = token[1:] if negative else token
        if body.startswith('"'):
            phrase = " ".join(normalise(body.strip('"')).split())
            if not phrase:
                continue
            (plan.exclusions if negative else plan.groups[-1]).append(phrase)
            continue
        if body == "OR" and not negative:
            if plan.groups[-1]:
                plan.groups.append([])
            continue
        word = _EDGE_PUNCT.sub("", normalise(body))
        if not word:
            continue
        if negative:
            plan.exclusions.append(word)
        elif lead in _SOURCE_LEADS and word in SOURCE_WORDS:
            source = SOURCE_ALIASES.get(word, word)
            if source not in plan.sources:
                plan.sources.append(source)
        elif word not in FILLER and word not in plan.groups[-1]:
            plan.groups[-1].append(word)
    plan.groups = [group for group in plan.groups if group]
    return plan
