"""The rss source: RSS 0.9x/1.0/2.0, Atom and JSON Feed, from an http(s) URL or a local file."""

from __future__ import annotations

import calendar
import html
import io
import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from xml.sax import SAXException
from xml.sax.handler import ContentHandler, ErrorHandler

import feedparser
from defusedxml import expatreader as defused_expat
from defusedxml.common import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from feedparser.encodings import convert_to_utf8

from . import FetchContext, SourceError, SourceRecord
from .http import FetchError, fetch

_TAGS = re.compile(r"<[^>]+>")
_SLASHED_DATE = re.compile(
    r"^\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:\s+(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$"
)


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


class _RootReached(Exception):
    pass


class _StopAtRoot(ContentHandler):
    def startElement(self, name, attrs):  # the SAX interface names it
        raise _RootReached


REFUSED = "The feed declares a DOCTYPE or entities, which feeds never need; refused for safety."
# Before the first element, as feedparser's fallback (sanitizer.replace_doctype) divides it.
_FIRST_ELEMENT = re.compile(rb"<\w")
_DECLARATION = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_HTML_DOCTYPE = re.compile(rb"<!DOCTYPE\s+html\b[^\[<>]*>", re.IGNORECASE)


class _NotAFeed(Exception):
    pass


def _as_feedparser_reads(content: bytes) -> bytes:
    """The document transcoded to UTF-8 exactly as feedparser does it (BOM and '<?xm' sniffing
    for UTF-16/32 and EBCDIC, the XML declaration, then fallbacks), with its declaration
    rewritten to say utf-8, so the check below and feedparser read the same text."""
    return convert_to_utf8({}, content, {})


def _check_declarations(document: bytes) -> None:
    """Refuse a document that declares a DOCTYPE or an entity, which is how XML bombs and
    external-entity reads start and which no feed needs. `document` is UTF-8 from
    _as_feedparser_reads.

    defusedxml's expat reader forbids both and stops at the root element, so a large feed
    costs little and CDATA in its items is no match. feedparser's fallback for a document not
    well-formed there reads declarations before the first element by pattern (even out of a
    comment), so those bytes must hold none either. An HTML page's doctype is no feed at all.
    """
    head = document[: match.start()] if (match := _FIRST_ELEMENT.search(document)) else document
    if _DECLARATION.search(_HTML_DOCTYPE.sub(b"", head)):
        raise SourceError(REFUSED)
    parser = defused_expat.create_parser(forbid_dtd=True, forbid_entities=True)
    parser.setContentHandler(_StopAtRoot())
    parser.setErrorHandler(ErrorHandler())
    try:
        parser.parse(io.BytesIO(document))
    except DTDForbidden as exc:
        if (exc.name or "").lower() == "html":
            raise _NotAFeed from None
        raise SourceError(REFUSED) from None
    except (EntitiesForbidden, ExternalReferenceForbidden):
        raise SourceError(REFUSED) from None
    except (_RootReached, SAXException):
        # A SAXParseException: not well-formed before the root, feedparser's loose parser
        # takes it; the head above held no declaration for it to read.
        pass
    if _HTML_DOCTYPE.search(head):
        raise _NotAFeed


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
        parsed = datetime.fromisoformat(value)
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
    if urlsplit(url).scheme in ("", "file"):
        return _read_local(url, context)
    try:
        return fetch(url, context.policy, {"Accept": _ACCEPT}).content
    except FetchError as exc:
        raise SourceError(str(exc)) from None


def _read_local(url: str, context: FetchContext) -> bytes:
    """A regular file inside the one folder the operator allows, never anything else: not
    /etc/passwd, not ../ out of it, not a link leading out, not a FIFO or a device."""
    if context.local_files_dir is None:
        raise SourceError(
            "Local files are not allowed on this server (BYTESTACK_ALLOW_LOCAL_FILES)."
        )
    parts = urlsplit(url)
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise SourceError(f"{url} names a file on another machine: only local files are read.")
    requested = Path(unquote(parts.path) if parts.scheme == "file" else url)
    root = Path(context.local_files_dir).resolve()
    # resolve() follows every link and "..", so what is checked is where the file really is;
    # a relative name is taken inside the folder.
    path = (root / requested).resolve()
    if not path.is_relative_to(root):
        raise SourceError(
            f"{requested} is outside the folder local feeds are read from "
            "(BYTESTACK_LOCAL_FILES_DIR)."
        )
    try:
        # O_NOFOLLOW: the file cannot have been swapped for a link since it was resolved;
        # O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused below).
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise SourceError(f"Could not read {requested}: {exc.strerror or exc}.") from None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise SourceError(f"{requested} is not a regular file.")
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            content = handle.read(context.policy.max_bytes + 1)
    finally:
        os.close(descriptor)
    if len(content) > context.policy.max_bytes:
        raise SourceError(f"{requested} is larger than the response size cap.")
    return content


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
    document = _as_feedparser_reads(content)
    try:
        _check_declarations(document)
    except _NotAFeed:
        raise SourceError(
            "Not a readable RSS, Atom or JSON feed (an HTML page, not a feed)."
        ) from None
    # A stream, never bytes: feedparser opens bytes naming a local file as that file.
    parsed = feedparser.parse(
        io.BytesIO(document), sanitize_html=False, resolve_relative_uris=False
    )
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
    feed_authors = document.get("authors") or (
        [document["author"]] if document.get("author") else []
    )
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
                text=_plain(
                    item.get("content_text") or item.get("content_html") or item.get("summary")
                ),
                author=author,
                published_at=_iso(item.get("date_published") or item.get("date_modified")),
                platform_id=str(item["id"]) if item.get("id") is not None else None,
                raw=item,
            )
        )
    return records
