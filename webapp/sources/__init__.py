"""Sources: each yields normalised records for a query; one registry lists them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .http import FetchError, FetchPolicy


class SourceError(Exception):
    """A source that cannot be used as configured, with a reason for a person."""


@dataclass
class SourceRecord:
    source: str
    url: str | None
    title: str | None
    text: str | None
    author: str | None
    published_at: datetime | None
    platform_id: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class FetchContext:
    policy: FetchPolicy
    allow_local_files: bool
    since: datetime | None
    until: datetime | None
    limit: int
    query: str
    # Credentials by name (e.g. "youtube_api_key"), from the environment or Settings.
    credentials: dict[str, str] = field(default_factory=dict)


def normalise_sources(value) -> list[dict]:
    """Validate a job's `sources` into a list of objects; raise SourceError with the reason."""
    if not isinstance(value, list) or not value:
        raise SourceError("Add at least one source, for example an RSS feed URL.")
    if len(value) > 50:
        raise SourceError("A job can have at most 50 sources.")
    result = []
    for index, item in enumerate(value, start=1):
        if isinstance(item, str):
            item = item.strip()
            if item.startswith(("http://", "https://", "file://", "/")):
                item = {"type": "rss", "url": item}
            else:
                item = {"type": item}
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise SourceError(f"Source {index} must be a source id or an object with a 'type'.")
        kind = item["type"]
        if kind not in SOURCE_TYPES:
            raise SourceError(
                f"Source {index}: unknown source {kind!r} (available: {', '.join(SOURCE_TYPES)})."
            )
        result.append(SOURCE_TYPES[kind].validate(item, index))
    return result


def fetch_source(config: dict, context: FetchContext) -> list[SourceRecord]:
    return SOURCE_TYPES[config["type"]].fetch(config, context)


def source_label(config: dict) -> str:
    return config.get("url") or config["type"]


from . import rss  # noqa: E402  (the registry needs the classes above)

SOURCE_TYPES = {"rss": rss.RSSSource}

__all__ = [
    "FetchContext",
    "FetchError",
    "SourceError",
    "SourceRecord",
    "fetch_source",
    "normalise_sources",
    "source_label",
]
