"""The rss source: RSS 0.9x/1.0/2.0, Atom and JSON Feed, from an http(s) URL or a local file."""

from __future__ import annotations

import calendar
import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from xml.parsers import expat

import feedparser

from . import FetchContext, SourceError, SourceRecord
from .http import FetchError, fetch

_TAGS = re.compile(r"<[^>]+>")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_SLASHED_DATE = re.compile(r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$")


def _slashed_date(text: str):
    """"2020/1/10 14:33:00", as forum software writes it; feedparser reads it as 2020-11-01."""
    match = _SLASHED_DATE.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part or 0) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC).utctimetuple()
    except ValueError:
        return None


feedparser.registerDateHandler(_slashed_date)


class _EntityDeclared(Exception):
    pass


class _PrologEnd(Exception):
    pass


def _raise(exception: type[Exception]):
    def handler(*_args) -> None:
        raise exception

    return handler


def _declares_entities(content: bytes) -> bool:
    """Whether the document type declares entities, which is how XML bombs and external-entity
    reads start and which no feed needs.

    Expat reads the prolog in the document's own encoding (UTF-16, a long comment first …) and
    stops at the root element, so a large feed costs nothing and CDATA in its items is no match.
    """
    parser = expat.ParserCreate()
    parser.EntityDeclHandler = _raise(_EntityDeclared)
    parser.StartElementHandler = _raise(_PrologEnd)
    try:
        parser.Parse(content, True)
    except _EntityDeclared:
        return True
    except (_PrologEnd, expat.ExpatError):
        # Not well-formed before the root: feedparser falls back to its loose parser,
        # which expands no declared entities.
        return False
    except ValueError:
        # Expat reads no multi-byte encoding but UTF-8/16 (gb2312, Shift_JIS …); those keep
        # ASCII bytes as they are, so a declaration shows as bytes.
        return _ENTITY_DECLARATION.search(content) is not None
    return False


def _plain(text: str | None) -> str | None:
    if not text:
        return None
    cleaned = " ".join(html.unescape(_TAGS.sub(" ", text)).split())
    return cleaned or None


def _struct_to_datetime(value) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), UTC)
    except (OverflowError, ValueError, TypeError):
        return None


def _iso(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class RSSSource:
    id = "rss"
    name = "RSS, Atom and JSON Feed"

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        url = item.get("url")
        if not isinstance(url, str) or not url.strip():
            raise SourceError(f"Source {index} (rss) needs a feed URL.")
        url = url.strip()
        try:
            parts = urlsplit(url)
        except ValueError:  # e.g. an unclosed IPv6 bracket
            raise SourceError(f"Source {index} (rss): {url!r} is not a valid URL.") from None
        if parts.scheme not in ("http", "https", "file", ""):
            raise SourceError(f"Source {index} (rss): {url!r} is not an http(s) URL or a file.")
        if parts.scheme in ("http", "https") and not parts.hostname:
            raise SourceError(f"Source {index} (rss): {url!r} has no host name.")
        return {"type": "rss", "url": url}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        url = config["url"]
        content = _read(url, context)
        return parse_feed(content)


def _read(url: str, context: FetchContext) -> bytes:
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if not context.allow_local_files:
            raise SourceError("Local files are not allowed on this server (BYTESTACK_ALLOW_LOCAL_FILES).")
        path = Path(parts.path if parts.scheme == "file" else url)
        try:
            size = path.stat().st_size
            if size > context.policy.max_bytes:
                raise SourceError(f"{path} is larger than the response size cap.")
            return path.read_bytes()
        except OSError as exc:
            raise SourceError(f"Could not read {path}: {exc.strerror or exc}.") from None
    try:
        return fetch(url, context.policy, {"Accept": _ACCEPT}).content
    except FetchError as exc:
        raise SourceError(str(exc)) from None


_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/json;q=0.9, application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)


def parse_feed(content: bytes) -> list[SourceRecord]:
    stripped = content.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise SourceError("The feed is empty: the server sent no content.")
    if stripped.startswith(b"{"):
        return _parse_json_feed(stripped)
    if _declares_entities(content):
        raise SourceError("The feed declares XML entities, which are refused for safety.")
    parsed = feedparser.parse(content, sanitize_html=False, resolve_relative_uris=False)
    # No entries and no feed format recognised: most often a web page instead of its feed.
    if not parsed.entries and (not parsed.get("version") or (parsed.bozo and not parsed.feed)):
        reason = getattr(parsed, "bozo_exception", None) or "no RSS, Atom or JSON Feed document"
        raise SourceError(f"Not a readable RSS, Atom or JSON feed ({reason}).")
    records = []
    for entry in parsed.entries:
        link = entry.get("link")
        author = entry.get("author") or (entry.get("author_detail") or {}).get("name")
        text = entry.get("summary")
        if entry.get("content"):
            text = entry["content"][0].get("value") or text
        published = _struct_to_datetime(
            entry.get("published_parsed") or entry.get("updated_parsed")
        )
        raw = {
            key: entry.get(key)
            for key in ("id", "title", "link", "author", "published", "updated", "summary")
            if entry.get(key) is not None
        }
        if entry.get("enclosures"):
            raw["enclosures"] = [dict(e) for e in entry["enclosures"]]
        records.append(
            SourceRecord(
                source="rss",
                url=link,
                title=_plain(entry.get("title")),
                text=_plain(text),
                author=_plain(author),
                published_at=published,
                platform_id=entry.get("id"),
                raw=raw,
            )
        )
    return records


def _parse_json_feed(content: bytes) -> list[SourceRecord]:
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"Not a readable JSON Feed: {exc}.") from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise SourceError("Not a JSON Feed: there is no 'items' list.")
    feed_authors = document.get("authors") or ([document["author"]] if document.get("author") else [])
    records = []
    for item in document["items"]:
        if not isinstance(item, dict):
            continue
        authors = item.get("authors") or ([item["author"]] if item.get("author") else feed_authors)
        author = None
        if authors and isinstance(authors[0], dict):
            author = authors[0].get("name")
        records.append(
            SourceRecord(
                source="rss",
                url=item.get("url") or item.get("external_url"),
                title=_plain(item.get("title")),
                text=_plain(item.get("content_text") or item.get("content_html") or item.get("summary")),
                author=author,
                published_at=_iso(item.get("date_published") or item.get("date_modified")),
                platform_id=str(item["id"]) if item.get("id") is not None else None,
                raw=item,
            )
        )
    return records
