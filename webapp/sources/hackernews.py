"""The hackernews source: stories and comments from the Algolia Hacker News search API."""

from __future__ import annotations

from . import FetchContext, SourceRecord
from .common import (
    as_id,
    base_url,
    clamp,
    expect,
    fetch_json,
    from_timestamp,
    host_of,
    metrics,
    parse_date,
    plain_text,
    query_groups,
    reject_unknown_options,
    strip_html,
    unique_records,
    with_params,
)

DEFAULT_BASE = "https://hn.algolia.com"
ITEM_URL = "https://news.ycombinator.com/item?id="
MAX_HITS = 1000  # Algolia's hitsPerPage ceiling
MAX_GROUPS = 5


class HackerNewsSource:
    id = "hackernews"
    name = "Hacker News"
    description = "Searches Hacker News stories and comments through hn.algolia.com; no key needed."
    credentials: tuple[str, ...] = ()

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "hackernews", ())
        return {"type": "hackernews"}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        # Algolia requires every word and knows no OR: one request per OR group; HN's index
        # has advanced syntax on, so quotes and -exclusions stay. An empty prompt is allowed:
        # search_by_date without a query lists the newest items.
        groups = query_groups(context.query, keep_exclusions=True)[:MAX_GROUPS] or [""]
        return unique_records(record(hit) for group in groups for hit in _search(group, context))


def _numeric_filters(context: FetchContext) -> str | None:
    filters = []
    if context.since is not None:
        filters.append(f"created_at_i>{int(context.since.timestamp())}")
    if context.until is not None:
        filters.append(f"created_at_i<{int(context.until.timestamp()) + 1}")
    return ",".join(filters) or None


def _search(query: str, context: FetchContext) -> list[dict]:
    url = with_params(
        base_url("hackernews", DEFAULT_BASE) + "/api/v1/search_by_date",
        {
            "query": query,
            "tags": "(story,comment)",
            "numericFilters": _numeric_filters(context),
            "hitsPerPage": clamp(context.limit, 1, MAX_HITS),
        },
    )
    hits = expect(fetch_json(url, context), "hits", host_of(url))
    return [hit for hit in hits if isinstance(hit, dict)]


def record(hit: dict) -> SourceRecord:
    object_id = as_id(hit.get("objectID"))
    is_comment = "comment" in (hit.get("_tags") or []) or bool(hit.get("comment_text"))
    # The record is the item on Hacker News: its score and comments live there.
    title = hit.get("title") or hit.get("story_title")
    if is_comment and title:
        title = f"Comment on: {title}"
    return SourceRecord(
        source="hackernews",
        url=ITEM_URL + object_id if object_id else hit.get("url"),
        title=plain_text(title),
        text=strip_html(hit.get("story_text") or hit.get("comment_text")),
        author=plain_text(hit.get("author")),
        published_at=from_timestamp(hit.get("created_at_i")) or parse_date(hit.get("created_at")),
        platform_id=object_id,
        metrics=metrics(score=hit.get("points"), comments=hit.get("num_comments")),
        raw=hit,
    )
