"""Prompt → query plan: terms, "quoted phrases", OR groups and -exclusions.

Pure helper with no Flask import. A record matches the plan when every term and phrase of
at least one OR group appears in its title or text, and no exclusion does.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# Words people write around what they are looking for ("mentions of acme on reddit today").
FILLER = frozenset(
    """
    a an and any are about all as at be by can did do does find for from get give had has
    have how i in into is it its last latest me mention mentioned mentions my new news of on
    or our people post posts say said says show some talk talked talking that the their them
    there these this those to today track tracking us via was we were what when where which
    who why will with yesterday you your week month past hours hour days day
    """.split()
)
# Source names after "on"/"from"/"via" say where to look, not what to look for.
SOURCE_WORDS = frozenset(
    "reddit hackernews hn youtube x twitter mastodon bluesky github news rss web".split()
)
_SOURCE_LEADS = frozenset(("on", "from", "via", "in"))
# "last 24 hours", "past 2 weeks", "last 7d" name a time window, not words to look for.
_WINDOW_LEADS = frozenset(("last", "past"))
_WINDOW_AMOUNT = re.compile(r"^\d{1,4}(h|d|w)?$")
_WINDOW_UNITS = frozenset("h hr hrs hour hours d day days w wk wks week weeks month months".split())
_TOKEN = re.compile(r'-?"[^"]*"?|\S+')
_EDGE_PUNCT = re.compile(r"^[^\w#@$+]+|[^\w#@$+]+$", re.UNICODE)


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass
class QueryPlan:
    groups: list[list[str]] = field(default_factory=list)  # OR of AND-groups
    exclusions: list[str] = field(default_factory=list)

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
        if self.is_empty and not self.exclusions:
            return "Searching for: everything the sources return"
        wanted = " OR ".join(
            " ".join(f'"{t}"' if " " in t else t for t in group) for group in self.groups if group
        )
        text = f"Searching for: {wanted or 'everything'}"
        if self.exclusions:
            text += ", excluding " + ", ".join(self.exclusions)
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


def _time_window(tokens: list[str]) -> set[int]:
    """Positions of the amount and unit after "last"/"past", which no record has to contain."""
    words = [_EDGE_PUNCT.sub("", normalise(token)) for token in tokens]
    skip: set[int] = set()
    for index, word in enumerate(words[:-1]):
        amount = _WINDOW_AMOUNT.match(words[index + 1])
        if word not in _WINDOW_LEADS or not amount:
            continue
        if amount.group(1):
            skip.add(index + 1)
        elif index + 2 < len(words) and words[index + 2] in _WINDOW_UNITS:
            skip.update((index + 1, index + 2))
    return skip


def parse_prompt(prompt: str) -> QueryPlan:
    plan = QueryPlan(groups=[[]])
    previous = ""
    tokens = _TOKEN.findall(prompt or "")
    window = _time_window(tokens)
    for index, token in enumerate(tokens):
        lead, previous = previous, normalise(token)
        if index in window:
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
            continue
        elif word not in FILLER and word not in plan.groups[-1]:
            plan.groups[-1].append(word)
    plan.groups = [group for group in plan.groups if group]
    return plan
