"""The news source: a news search feed in the Google News RSS style (RSS 2.0 per query)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from . import FetchContext, SourceRecord
from .common import (
    base_url,
    fetch_response,
    reject_unknown_options,
    require_query,
    utc,
    with_params,
)
from .rss import parse_feed

DEFAULT_BASE = "https://news.google.com"
_ACCEPT = "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.5"


def news_query(query: str, since: datetime | None, until: datetime | None) -> str:
    """The query with after:/before: day operators, a day wider on each side because the feed
    reads them as whole days; the run's own filter cuts to the exact window."""
    parts = [query]
    if since is not None:
        parts.append(f"after:{(utc(since) - timedelta(days=1)).date().isoformat()}")
    if until is not None:
        parts.append(f"before:{(utc(until) + timedelta(days=1)).date().isoformat()}")
    return " ".join(parts)


class NewsSource:
    id = "news"
    name = "News search"
    description = "Searches news articles through a news search feed (Google News RSS)."
    credentials: tuple[str, ...] = ()

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "news", ())
        return {"type": "news"}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        query = require_query(context, "News search")
        url = with_params(
            base_url("news", DEFAULT_BASE) + "/rss/search",
            {
                "q": news_query(query, context.since, context.until),
                "hl": "en",
                "gl": "US",
                "ceid": "US:en",
            },
        )
        content = fetch_response(url, context, {"Accept": _ACCEPT}).content
        return [dataclasses.replace(item, source="news") for item in parse_feed(content)]
