"""The json source: any HTTP JSON API, items picked with JMESPath expressions."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import jmespath
from jmespath.exceptions import JMESPathError

from . import FetchContext, SourceError, SourceRecord
from .common import (
    as_id,
    check_http_url,
    fetch_json,
    host_of,
    parse_date,
    reject_unknown_options,
    strip_html,
)

# "url" is the API's own address, so the item's link is mapped by "link" (as in the web
# source).
FIELDS = ("title", "link", "text", "author", "date", "id")
# Where common APIs keep each field, tried in order when the source sets no expression.
DEFAULTS = {
    "title": "title || name || headline",
    "link": "url || link || html_url || href || permalink",
    "text": "text || body || description || summary || content_text || content_html || content",
    "author": "author.name || author.login || author || user.login || user.name || user || by",
    "date": (
        "date || date_published || published_at || publishedAt || created_at || createdAt"
        " || published || pubDate || updated_at || time || timestamp"
    ),
    "id": "id || guid || uuid",
}


def _compile(expression: Any, name: str, index: int) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise SourceError(f"Source {index} (json): {name!r} must be a JMESPath expression.")
    try:
        jmespath.compile(expression.strip())
    except JMESPathError as exc:
        reason = str(exc).splitlines()[0]
        raise SourceError(
            f"Source {index} (json): {expression!r} ({name}) is not valid JMESPath: {reason}"
        ) from None
    return expression.strip()


class JSONSource:
    id = "json"
    name = "JSON API (JMESPath)"
    description = "Reads items from any HTTP JSON API with a JMESPath expression."
    credentials: tuple[str, ...] = ()

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "json", ("url", "items", *FIELDS))
        if item.get("items") is None:
            raise SourceError(
                f"Source {index} (json) needs 'items', a JMESPath expression for the list of "
                "items (for example 'data.children[].data')."
            )
        config = {
            "type": "json",
            "url": check_http_url(item.get("url"), index, "json"),
            "items": _compile(item["items"], "items", index),
        }
        for name in FIELDS:
            if item.get(name) is not None:
                config[name] = _compile(item[name], name, index)
        return config

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        document = fetch_json(config["url"], context)
        found = _search(config["items"], document)
        if found is None:
            raise SourceError(
                f"The items expression {config['items']!r} found nothing in the JSON from "
                f"{host_of(config['url'])}; check it against the API's answer."
            )
        items = found if isinstance(found, list) else [found]
        return [record(item, config) for item in items if item is not None]


def _search(expression: str, data: Any) -> Any:
    try:
        return jmespath.search(expression, data)
    except JMESPathError as exc:  # e.g. a function given the wrong type at run time
        raise SourceError(f"The JMESPath expression {expression!r} failed: {exc}.") from None


def _scalar(value: Any) -> str | None:
    """A field as text: strings and numbers only; an object where text belongs is left out."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return " ".join(value.split()) or None
    return None


def record(item: Any, config: dict) -> SourceRecord:
    def field(name: str) -> Any:
        return _search(config.get(name) or DEFAULTS[name], item)

    url = _scalar(field("link"))
    return SourceRecord(
        source="json",
        # Relative links (e.g. "/posts/1") are relative to the API URL.
        url=urljoin(config["url"], url) if url else None,
        title=_scalar(field("title")),
        # Text fields of JSON APIs are often HTML (content_html, body_html).
        text=strip_html(_scalar(field("text"))),
        author=_scalar(field("author")),
        published_at=parse_date(field("date")),
        platform_id=as_id(_scalar(field("id"))),
        raw=item if isinstance(item, dict) else {"value": item},
    )
