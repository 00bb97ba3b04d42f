"""The bluesky source: app.bsky.feed.searchPosts on the public AppView, newest first."""

from __future__ import annotations

from . import FetchContext, SourceRecord
from .common import (
    base_url,
    clamp,
    expect,
    fetch_json,
    host_of,
    metrics,
    parse_date,
    plain_text,
    query_groups,
    reject_unknown_options,
    require_query,
    rfc3339,
    unique_records,
    with_params,
)

DEFAULT_BASE = "https://public.api.bsky.app"
SITE = "https://bsky.app"
MAX_LIMIT = 100
MAX_GROUPS = 5


class BlueskySource:
    id = "bluesky"
    name = "Bluesky"
    description = "Searches Bluesky posts through the public AppView API; no key needed."
    credentials: tuple[str, ...] = ()

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "bluesky", ())
        return {"type": "bluesky"}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        require_query(context, "Bluesky")
        # searchPosts leaves boolean syntax unspecified: one request per OR group.
        groups = query_groups(context.query)[:MAX_GROUPS]
        return unique_records(
            record(post) for group in groups for post in _search(group, context)
        )


def _search(query: str, context: FetchContext) -> list[dict]:
    url = with_params(
        base_url("bluesky", DEFAULT_BASE) + "/xrpc/app.bsky.feed.searchPosts",
        {
            "q": query,
            "sort": "latest",
            "limit": clamp(context.limit, 1, MAX_LIMIT),
            "since": rfc3339(context.since) if context.since else None,
            "until": rfc3339(context.until) if context.until else None,
        },
    )
    posts = expect(fetch_json(url, context), "posts", host_of(url))
    return [post for post in posts if isinstance(post, dict)]


def post_url(uri: str | None, handle: str | None) -> str | None:
    """at://did/app.bsky.feed.post/rkey → https://bsky.app/profile/handle/post/rkey."""
    if not uri or not uri.startswith("at://"):
        return None
    parts = uri[len("at://") :].split("/")
    if len(parts) != 3 or parts[1] != "app.bsky.feed.post":
        return None
    return f"{SITE}/profile/{handle or parts[0]}/post/{parts[2]}"


def record(post: dict) -> SourceRecord:
    author = post.get("author") or {}
    body = post.get("record") or {}
    handle = author.get("handle")
    return SourceRecord(
        source="bluesky",
        url=post_url(post.get("uri"), handle),
        title=None,  # posts have no title
        text=plain_text(body.get("text")),
        author=f"@{handle}" if handle else author.get("did"),
        published_at=parse_date(body.get("createdAt") or post.get("indexedAt")),
        platform_id=post.get("uri"),
        metrics=metrics(
            likes=post.get("likeCount"),
            reposts=post.get("repostCount"),
            comments=post.get("replyCount"),
            quotes=post.get("quoteCount"),
        ),
        raw=post,
    )
