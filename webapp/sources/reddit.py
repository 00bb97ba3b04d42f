"""The reddit source: Reddit's public search JSON (a Listing of t3 posts), newest first."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..timeutil import now
from . import FetchContext, SourceError, SourceRecord
from .common import (
    as_id,
    base_url,
    clamp,
    expect,
    fetch_json,
    from_timestamp,
    host_of,
    metrics,
    plain_text,
    reject_unknown_options,
    require_query,
    with_params,
)

DEFAULT_BASE = "https://www.reddit.com"
# Permalinks point at reddit.com itself even when the API base is a mirror or a test server.
SITE = "https://www.reddit.com"
MAX_LIMIT = 100
_WINDOWS = (
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
    ("week", timedelta(weeks=1)),
    ("month", timedelta(days=31)),
    ("year", timedelta(days=366)),
)


def time_window(since: datetime | None, moment: datetime) -> str:
    """Reddit's `t` takes fixed windows: the smallest one that still covers `since`."""
    if since is None:
        return "all"
    for name, span in _WINDOWS:
        if moment - since <= span:
            return name
    return "all"


class RedditSource:
    id = "reddit"
    name = "Reddit"
    description = "Searches Reddit posts through Reddit's public JSON; no key needed."
    credentials: tuple[str, ...] = ()

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "reddit", ())
        return {"type": "reddit"}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        query = require_query(context, "Reddit")
        url = with_params(
            base_url("reddit", DEFAULT_BASE) + "/search.json",
            {
                "q": query,
                "sort": "new",
                "limit": clamp(context.limit, 1, MAX_LIMIT),
                "t": time_window(context.since, now()),
                # Without raw_json Reddit HTML-escapes every string ("&amp;").
                "raw_json": 1,
            },
        )
        document = fetch_json(url, context)
        listing = expect(document, "data", host_of(url), dict)
        children = listing.get("children")
        if not isinstance(children, list):
            raise SourceError(f"{host_of(url)} returned a Listing without 'children'.")
        return [record(child["data"]) for child in children if _is_post(child)]


def _is_post(child) -> bool:
    return (
        isinstance(child, dict)
        and child.get("kind") == "t3"
        and isinstance(child.get("data"), dict)
    )


def record(post: dict) -> SourceRecord:
    permalink = post.get("permalink")
    # The record is the post on Reddit (its score and comments live there), not the link.
    on_reddit = isinstance(permalink, str) and permalink.startswith("/")
    return SourceRecord(
        source="reddit",
        url=SITE + permalink if on_reddit else post.get("url"),
        title=plain_text(post.get("title")),
        text=plain_text(post.get("selftext")),
        author=plain_text(post.get("author")),
        published_at=from_timestamp(post.get("created_utc")),
        platform_id=as_id(post.get("name") or post.get("id")),
        metrics=metrics(score=post.get("score"), comments=post.get("num_comments")),
        raw=post,
    )
