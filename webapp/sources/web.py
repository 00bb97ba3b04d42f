"""The web source: any HTML list page, read with CSS selectors (selectolax)."""

from __future__ import annotations

import re
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from . import FetchContext, SourceError, SourceRecord
from .common import check_http_url, fetch_response, parse_date, reject_unknown_options

SELECTORS = ("item", "title", "link")
OPTIONAL_SELECTORS = ("text", "date")
_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.5"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
# Attributes that hold a machine-readable date, in the order pages use them.
_DATE_ATTRIBUTES = ("datetime", "content", "title", "data-time", "data-timestamp")


def _check_selector(item: dict, name: str, index: int) -> str:
    selector = item.get(name)
    if not isinstance(selector, str) or not selector.strip():
        raise SourceError(f"Source {index} (web) needs a CSS selector for {name!r}.")
    try:
        LexborHTMLParser("<p></p>").css(selector.strip())
    except SelectolaxError:
        raise SourceError(
            f"Source {index} (web): {selector!r} ({name}) is not a valid CSS selector."
        ) from None
    return selector.strip()


class WebSource:
    id = "web"
    name = "Web page (CSS selectors)"
    description = "Reads items from any web page with CSS selectors for item, title and link."
    credentials: tuple[str, ...] = ()

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "web", ("url", *SELECTORS, *OPTIONAL_SELECTORS))
        config = {"type": "web", "url": check_http_url(item.get("url"), index, "web")}
        for name in SELECTORS:
            config[name] = _check_selector(item, name, index)
        for name in OPTIONAL_SELECTORS:
            if item.get(name) not in (None, ""):
                config[name] = _check_selector(item, name, index)
        return config

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        response = fetch_response(config["url"], context, {"Accept": _ACCEPT})
        text = decode(response.content, response.headers.get("content-type", ""))
        # Links resolve against the page's final URL, after any redirect.
        return extract(text, config, response.url)


def decode(content: bytes, content_type: str) -> str:
    """The page as text: the charset from the header, else a <meta> one, else UTF-8."""
    for match in (_HEADER_CHARSET.search(content_type), _META_CHARSET.search(content[:4096])):
        if not match:
            continue
        name = match.group(1)
        name = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            return content.decode(name, errors="replace")
        except LookupError:
            continue  # an unknown charset name: try the next clue
    return content.decode("utf-8", errors="replace")


def extract(page: str, config: dict, page_url: str) -> list[SourceRecord]:
    tree = LexborHTMLParser(page)
    records = []
    for node in tree.css(config["item"]):
        item = _fields(node, config, page_url)
        if not (item["title"] or item["url"]):
            continue  # a row the selectors do not fit (an ad, a separator)
        records.append(
            SourceRecord(
                source="web",
                url=item["url"],
                title=item["title"],
                text=item["text"],
                author=None,
                published_at=parse_date(item["date"]),
                platform_id=None,
                raw={key: value for key, value in item.items() if value is not None},
            )
        )
    return records


def _text(node: LexborNode | None) -> str | None:
    if node is None:
        return None
    return " ".join((node.text(separator=" ") or "").split()) or None


def _link(node: LexborNode | None, page_url: str) -> str | None:
    """The href of the matched element, or of the first link inside it."""
    if node is None:
        return None
    href = node.attributes.get("href")
    if not href:
        inner = node.css_first("a[href]")
        href = inner.attributes.get("href") if inner is not None else None
    href = (href or "").strip()
    if not href or href.lower().startswith(("javascript:", "mailto:", "#")):
        return None
    return urljoin(page_url, href)


def _date(node: LexborNode | None) -> str | None:
    """The first of the date attributes or the text that reads as a date ("4 hours ago"
    beside datetime="2014-04-19 07:22:51" picks the attribute)."""
    if node is None:
        return None
    candidates = [node.attributes.get(name) for name in _DATE_ATTRIBUTES] + [_text(node)]
    candidates = [value.strip() for value in candidates if value and value.strip()]
    for value in candidates:
        if parse_date(value) is not None:
            return value
    return candidates[-1] if candidates else None


def _first(node: LexborNode, selector: str | None) -> LexborNode | None:
    return node.css_first(selector) if selector else None


def _fields(node: LexborNode, config: dict, page_url: str) -> dict:
    return {
        "title": _text(_first(node, config["title"])),
        "url": _link(_first(node, config["link"]), page_url),
        "text": _text(_first(node, config.get("text"))),
        "date": _date(_first(node, config.get("date"))),
    }
