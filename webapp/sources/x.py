"""The x source: X (Twitter) API v2 recent search, with a bearer token."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..timeutil import now
from . import FetchContext, SourceRecord
from .common import (
    as_id,
    base_url,
    clamp,
    clean_text,
    expect,
    fetch_json,
    host_of,
    metrics,
    parse_date,
    reject_unknown_options,
    require_credential,
    require_query,
    rfc3339,
    utc,
    with_params,
)

DEFAULT_BASE = "https://api.x.com"
SITE = "https://x.com"
# Recent search covers the last 7 days and refuses a start_time before that; an end_time
# must be at least 10 s before the request. Both margins keep a slow clock from a 400.
WINDOW = timedelta(days=7) - timedelta(minutes=1)
END_MARGIN = timedelta(seconds=30)


def time_bounds(since: datetime | None, until: datetime | None, moment: datetime):
    start = None if since is None else rfc3339(max(utc(since), moment - WINDOW))
    end = None
    if until is not None and utc(until) < moment - END_MARGIN:
        end = rfc3339(until)
    return start, end


class XSource:
    id = "x"
    name = "X (Twitter)"
    description = "Searches posts of the last 7 days with the X API v2 recent search."
    credentials: tuple[str, ...] = ("x_bearer_token",)

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "x", ())
        return {"type": "x"}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        token = require_credential(context, XSource.name, "x_bearer_token")
        query = require_query(context, XSource.name)
        start, end = time_bounds(context.since, context.until, now())
        url = with_params(
            base_url("x", DEFAULT_BASE) + "/2/tweets/search/recent",
            {
                "query": query,
                "max_results": clamp(context.limit, 10, 100),  # the API's own bounds
                "start_time": start,
                "end_time": end,
                "tweet.fields": "created_at,author_id,public_metrics,lang,conversation_id",
                "expansions": "author_id",
                "user.fields": "username,name",
            },
        )
        document = fetch_json(
            url,
            context,
            headers={"Authorization": f"Bearer {token}"},
            secrets=(token,),
            auth_hint="BYTESTACK_X_BEARER_TOKEN",
        )
        if isinstance(document, dict) and "data" not in document:
            return []  # no matches: X leaves "data" out and says result_count 0
        posts = expect(document, "data", host_of(url))
        users = _users(document)
        return [record(post, users) for post in posts if isinstance(post, dict)]


def _users(document: dict) -> dict[str, dict]:
    includes = document.get("includes") or {}
    return {
        str(user.get("id")): user
        for user in includes.get("users") or []
        if isinstance(user, dict)
    }


def record(post: dict, users: dict[str, dict]) -> SourceRecord:
    post_id = as_id(post.get("id"))
    user = users.get(str(post.get("author_id"))) or {}
    username = user.get("username")
    public = post.get("public_metrics") or {}
    # Without the users expansion only the author's numeric id is known; /i/web works for it.
    path = f"/{username}/status/{post_id}" if username else f"/i/web/status/{post_id}"
    return SourceRecord(
        source="x",
        url=SITE + path if post_id else None,
        title=None,  # posts have no title
        text=clean_text(post.get("text")),
        author=f"@{username}" if username else as_id(post.get("author_id")),
        published_at=parse_date(post.get("created_at")),
        platform_id=post_id,
        metrics=metrics(
            likes=public.get("like_count"),
            reposts=public.get("retweet_count"),
            comments=public.get("reply_count"),
            quotes=public.get("quote_count"),
            views=public.get("impression_count"),
        ),
        raw=post,
    )
