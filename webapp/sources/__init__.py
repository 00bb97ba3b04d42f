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
    # The folder local feed files may be read from (BYTESTACK_LOCAL_FILES_DIR); None: no
    # local files at all.
    local_files_dir: str | None
    since: datetime | None
    until: datetime | None
    limit: int
    query: str
    # Credentials by name (e.g. "youtube_api_key"), from the environment or Settings.
    credentials: dict[str, str] = field(default_factory=dict)


def normalise_sources(value) -> list[dict]:
    """Validate a job's `sources` into a list of objects; raise SourceError with the reason.
    How many a job may have is the schemas' rule (webapp.schemas.SOURCES_MAX)."""
    if not isinstance(value, list) or not value:
        raise SourceError("Add at least one source, for example an RSS feed URL.")
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
        kind = item["type"].strip()
        if kind not in SOURCE_TYPES and kind.lower() in SOURCE_TYPES:
            kind = kind.lower()  # "Reddit" as people write it
        if kind not in SOURCE_TYPES:
            usable = [key for key, cls in SOURCE_TYPES.items() if getattr(cls, "available", True)]
            raise SourceError(
                f"Source {index}: unknown source {kind!r} (available: {', '.join(usable)})."
            )
        result.append(SOURCE_TYPES[kind].validate({**item, "type": kind}, index))
    return result


def fetch_source(config: dict, context: FetchContext) -> list[SourceRecord]:
    cls = SOURCE_TYPES.get(config.get("type"))
    if cls is None:  # a plugin uninstalled after the job was saved
        raise SourceError(f"The source {config.get('type')!r} is not installed on this server.")
    return cls.fetch(config, context)


def source_label(config: dict) -> str:
    return config.get("url") or config["type"]


# The modules below import the classes above, so these imports come after them.
from . import (
    bluesky,
    github,
    hackernews,
    json_api,
    mastodon,
    news,
    reddit,
    rss,
    web,
    x,
    youtube,
)
from .common import missing_credential
from .plugins import load_plugins
from .unavailable import UNAVAILABLE_PLATFORMS

BUILTIN_SOURCES: dict[str, type] = {
    "rss": rss.RSSSource,
    "reddit": reddit.RedditSource,
    "hackernews": hackernews.HackerNewsSource,
    "youtube": youtube.YouTubeSource,
    "x": x.XSource,
    "mastodon": mastodon.MastodonSource,
    "bluesky": bluesky.BlueskySource,
    "news": news.NewsSource,
    "github": github.GitHubSource,
    "web": web.WebSource,
    "json": json_api.JSONSource,
    **UNAVAILABLE_PLATFORMS,
}
# rss.py is kept as it is; its registry text lives here.
_DESCRIPTIONS = {"rss": "Reads any RSS, Atom or JSON Feed URL (or a local file, when allowed)."}

# Built-ins plus installed plugins. One dict, updated in place, so modules that imported it
# see a reload.
SOURCE_TYPES: dict[str, type] = {}


def load_sources() -> dict[str, type]:
    """(Re)build SOURCE_TYPES from the built-ins and the installed plugins."""
    taken = {key for key, cls in BUILTIN_SOURCES.items() if getattr(cls, "available", True)}
    registry = {**BUILTIN_SOURCES, **load_plugins(taken)}
    SOURCE_TYPES.clear()
    SOURCE_TYPES.update(registry)
    return SOURCE_TYPES


def source_status(cls: type, credentials: dict[str, str]) -> tuple[str, str]:
    """(status, detail) of one source class given the credentials at hand."""
    description = getattr(cls, "description", None) or _DESCRIPTIONS.get(cls.id, "")
    if not getattr(cls, "available", True):
        return "unavailable", description
    missing = [name for name in getattr(cls, "credentials", ()) if not credentials.get(name)]
    if missing:
        return "needs_credentials", missing_credential(cls.name, missing[0])
    return "ready", description


def list_sources(credentials: dict[str, str] | None = None) -> list[dict]:
    """Every source with its status: ready, needs_credentials or unavailable."""
    credentials = credentials or {}
    listed = []
    for source_id, cls in SOURCE_TYPES.items():
        status, detail = source_status(cls, credentials)
        name = getattr(cls, "name", None) or source_id
        listed.append({"id": source_id, "name": name, "status": status, "detail": detail})
    return listed


load_sources()

__all__ = [
    "FetchContext",
    "FetchError",
    "SourceError",
    "SourceRecord",
    "fetch_source",
    "list_sources",
    "load_sources",
    "normalise_sources",
    "source_label",
]
