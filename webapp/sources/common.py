"""Helpers every built-in source shares: base URLs, credentials, JSON fetching with readable
errors, HTML to text, dates, request parameters and search-query rewriting."""

from __future__ import annotations

import html
import json
import os
import re
import warnings
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from urllib.parse import quote, quote_plus, urlencode, urlsplit
from zoneinfo import ZoneInfo

from dateutil import parser as dateparser

from . import FetchContext, SourceError, SourceRecord
from .http import FetchError, Response, fetch

# Credential name → the environment variable that supplies it and what it is called.
CREDENTIALS: dict[str, tuple[str, str]] = {
    "youtube_api_key": ("BYTESTACK_YOUTUBE_API_KEY", "an API key"),
    "x_bearer_token": ("BYTESTACK_X_BEARER_TOKEN", "a bearer token"),
    "github_token": ("BYTESTACK_GITHUB_TOKEN", "a token"),
}

_TAGS = re.compile(r"<[^>]+>")
# Block tags become spaces ("one<p>two" is two sentences); inline ones vanish, so Mastodon's
# "@<span>alexl</span>" stays "@alexl".
_BLOCK_TAG = re.compile(
    r"</?(?:p|br|div|li|ul|ol|h[1-6]|blockquote|pre|tr|td|th|table|hr)\b[^>]*>", re.IGNORECASE
)
_HTTP_STATUS = re.compile(r"answered HTTP (\d{3})")
_QUERY_TOKEN = re.compile(r'-?"[^"]*"?|\S+')
# Zone abbreviations found on web pages and feeds, which dateutil does not know. "PST" is a
# fixed offset; "PT" means whatever the local time was then, so it follows the zone's DST.
_ZONES: dict[str, tzinfo] = {
    **{
        name: timezone(timedelta(hours=hours), name)
        for name, hours in (
            ("EST", -5), ("EDT", -4), ("CST", -6), ("CDT", -5),
            ("MST", -7), ("MDT", -6), ("PST", -8), ("PDT", -7),
            ("CET", 1), ("CEST", 2),
        )
    },
    **{
        name: ZoneInfo(zone)
        for name, zone in (
            ("ET", "America/New_York"), ("CT", "America/Chicago"),
            ("MT", "America/Denver"), ("PT", "America/Los_Angeles"),
        )
    },
}


# --- configuration --------------------------------------------------------------------------


def credentials_from_environment() -> dict[str, str]:
    """The source credentials set in the environment, by credential name."""
    found = {}
    for name, (variable, _) in CREDENTIALS.items():
        value = os.environ.get(variable, "").strip()
        if value:
            found[name] = value
    return found


def base_url(source_id: str, default: str) -> str:
    """The source's API base: BYTESTACK_SOURCE_<ID>_URL when set (read at fetch time, so a
    mirror or a test server can stand in), else the public default."""
    variable = f"BYTESTACK_SOURCE_{source_id.upper()}_URL"
    return (os.environ.get(variable, "").strip() or default).rstrip("/")


def missing_credential(source_name: str, credential: str) -> str:
    """The sentence telling a person how to supply a credential."""
    variable, what = CREDENTIALS.get(credential, (None, f"the credential {credential!r}"))
    where = f"set {variable} or add it in Settings → Sources" if variable else (
        "add it in Settings → Sources"
    )
    return f"{source_name} needs {what}: {where}."


def require_credential(context: FetchContext, source_name: str, credential: str) -> str:
    value = (context.credentials or {}).get(credential, "")
    if not isinstance(value, str) or not value.strip():
        raise SourceError(missing_credential(source_name, credential))
    return value.strip()


def require_query(context: FetchContext, source_name: str) -> str:
    """Search APIs refuse an empty query; say so instead of sending one."""
    query = (context.query or "").strip()
    if not query:
        raise SourceError(
            f"{source_name} searches by keyword, and the prompt has no words to search for."
        )
    return query


def reject_unknown_options(item: dict, index: int, source_id: str, allowed: Iterable[str]) -> None:
    allowed = {"type", *allowed}
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise SourceError(
            f"Source {index} ({source_id}): unknown option {unknown[0]!r} "
            f"(allowed: {', '.join(sorted(allowed))})."
        )


def check_http_url(value: Any, index: int, source_id: str) -> str:
    """A configured page or API URL: http(s) with a host."""
    if not isinstance(value, str) or not value.strip():
        raise SourceError(f"Source {index} ({source_id}) needs a 'url'.")
    url = value.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise SourceError(f"Source {index} ({source_id}): {url!r} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"Source {index} ({source_id}): {url!r} is not an http(s) URL.")
    return url


# --- fetching -------------------------------------------------------------------------------


def with_params(url: str, params: dict[str, Any]) -> str:
    """The URL with its query string; parameters that are None are left out."""
    kept = {key: value for key, value in params.items() if value is not None}
    return f"{url}?{urlencode(kept)}" if kept else url


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            # As sent (in a header) and as it appears inside a query string.
            for form in (secret, quote_plus(secret), quote(secret, safe="")):
                text = text.replace(form, "***")
    return text


def _status_message(host: str, status: int, auth_hint: str | None) -> str | None:
    if status == 401:
        hint = f"; check {auth_hint}" if auth_hint else ""
        return f"{host} answered HTTP 401: the credentials were refused{hint}."
    if status == 403 and auth_hint:
        return (
            f"{host} answered HTTP 403: access refused, the key may lack permission or its "
            f"quota may be used up (check {auth_hint})."
        )
    if status == 403:
        return (
            f"{host} answered HTTP 403: access refused; the service may be blocking this "
            "server or limiting it, try a later run."
        )
    if status == 429:
        return f"{host} answered HTTP 429: rate limited, try a later run."
    if status == 404:
        return f"{host} answered HTTP 404: there is no such API path; check the source's URL."
    if status >= 500:
        return f"{host} answered HTTP {status}: the service is failing, try a later run."
    return None


def fetch_response(
    url: str,
    context: FetchContext,
    headers: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    auth_hint: str | None = None,
) -> Response:
    """GET through the one HTTP client; every failure becomes a SourceError for a person.

    Secrets (an API key sent in the query string) are masked, because error messages are
    stored with the run and shown on the dashboard.
    """
    secrets = tuple(secrets)
    try:
        return fetch(url, context.policy, headers)
    except FetchError as exc:
        message = str(exc)
        # http.fetch reports a status only in its message; read it back from there.
        match = _HTTP_STATUS.search(message)
        if match:
            message = _status_message(host_of(url), int(match.group(1)), auth_hint) or message
        raise SourceError(_redact(message, secrets)) from None


def fetch_json(
    url: str,
    context: FetchContext,
    headers: dict[str, str] | None = None,
    secrets: Iterable[str] = (),
    auth_hint: str | None = None,
) -> Any:
    secrets = tuple(secrets)
    response = fetch_response(
        url, context, {"Accept": "application/json", **(headers or {})}, secrets, auth_hint
    )
    return parse_json(response.content, host_of(url), secrets)


def parse_json(content: bytes, host: str, secrets: Iterable[str] = ()) -> Any:
    try:
        return json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        start = content[:60].decode("utf-8", "replace").strip()
        start = " ".join(start.split())
        shown = f" (it starts with {start!r})" if start else " (an empty body)"
        raise SourceError(
            _redact(f"{host} returned something that is not JSON{shown}; "
                    "check the source's URL.", secrets)
        ) from None


def expect(document: Any, key: str, host: str, kind: type = list) -> Any:
    """document[key] of the given type, or a SourceError naming what was missing."""
    value = document.get(key) if isinstance(document, dict) else None
    if not isinstance(value, kind):
        noun = "list" if kind is list else "object"
        raise SourceError(f"{host} returned JSON without the {noun} {key!r} this source reads.")
    return value


# --- text and numbers -----------------------------------------------------------------------


def strip_html(text: Any) -> str | None:
    """Plain text from an HTML fragment, entities decoded and whitespace collapsed."""
    if not isinstance(text, str) or not text:
        return None
    plain = html.unescape(_TAGS.sub("", _BLOCK_TAG.sub(" ", text)))
    cleaned = " ".join(plain.split())
    return cleaned or None


def plain_text(text: Any) -> str | None:
    """A string field as the API sent it, trimmed; None when empty or not a string."""
    if not isinstance(text, str):
        return None
    return text.strip() or None


def clean_text(text: Any) -> str | None:
    """Plain text that some APIs still send with HTML entities (&amp;, &#39;)."""
    if not isinstance(text, str):
        return None
    cleaned = html.unescape(text).strip()
    return cleaned or None


def metrics(**values: Any) -> dict[str, int]:
    """Only whole-number metrics; a missing or odd value is left out rather than guessed."""
    return {
        name: int(value)
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def as_id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


# --- dates ----------------------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def from_timestamp(value: Any) -> datetime | None:
    """Unix seconds (or milliseconds, which some APIs send) as aware UTC."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if abs(value) > 1e11 else value
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_date(value: Any) -> datetime | None:
    """A date as APIs and pages write it (ISO 8601, RFC 2822, Unix time, "March 6, 2016
    1:46 PM PT"), as aware UTC; a value without a zone is taken as UTC. None if unreadable
    or if it lacks a year, month or day ("Fri", "12")."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_timestamp(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    if re.fullmatch(r"\d{9,13}(\.\d+)?", text):
        return from_timestamp(float(text))
    try:
        return utc(datetime.fromisoformat(text))  # reads "Z" since Python 3.11
    except ValueError:
        pass
    # dateutil fills what is missing from a default date: parsing against two different
    # defaults shows whether the text itself names the whole date.
    first, second = _dateutil(text, _DEFAULTS[0]), _dateutil(text, _DEFAULTS[1])
    if first is None or second is None or first.date() != second.date():
        return None
    return utc(first)


_DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))


def _dateutil(text: str, default: datetime) -> datetime | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dateutil warns on zone names it drops
        try:
            return dateparser.parse(text, default=default, tzinfos=_ZONES)
        except (ValueError, OverflowError, TypeError):
            return None


def rfc3339(value: datetime) -> str:
    """"2024-05-01T08:00:00Z": the form every search API here accepts."""
    return utc(value).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# --- search queries -------------------------------------------------------------------------


def query_groups(query: str, keep_exclusions: bool = False) -> list[str]:
    """The OR groups of a plan's query string.

    For APIs that read every word as required and know no OR (Algolia, Mastodon, Bluesky):
    one request per group finds what the prompt asks for. Exclusions are added to every
    group where the API reads "-word" (Algolia's advanced syntax), else left to the run's
    local filter.
    """
    groups: list[list[str]] = [[]]
    exclusions: list[str] = []
    for token in _QUERY_TOKEN.findall(query or ""):
        if token == "OR":
            if groups[-1]:
                groups.append([])
        elif token.startswith("-") and len(token) > 1:
            exclusions.append(token)
        else:
            groups[-1].append(token)
    tail = exclusions if keep_exclusions else []
    return [" ".join(group + tail) for group in groups if group]


def unique_records(records: Iterable[SourceRecord]) -> list[SourceRecord]:
    """Records in order, each platform item once (several OR groups can find the same one)."""
    kept: list[SourceRecord] = []
    seen: set[str] = set()
    for item in records:
        if item.platform_id and item.platform_id in seen:
            continue
        if item.platform_id:
            seen.add(item.platform_id)
        kept.append(item)
    return kept
