"""The github source: GitHub's issue and pull-request search, newest first."""

from __future__ import annotations

from datetime import datetime

from . import FetchContext, SourceRecord
from .common import (
    as_id,
    base_url,
    clamp,
    expect,
    fetch_json,
    host_of,
    metrics,
    parse_date,
    plain_text,
    reject_unknown_options,
    require_query,
    rfc3339,
    with_params,
)

DEFAULT_BASE = "https://api.github.com"
MAX_PER_PAGE = 100


def github_query(query: str, since: datetime | None, until: datetime | None) -> str:
    """The query with a created: qualifier for the window (GitHub reads ISO 8601 times)."""
    if since is not None and until is not None:
        return f"{query} created:{rfc3339(since)}..{rfc3339(until)}"
    if since is not None:
        return f"{query} created:>={rfc3339(since)}"
    if until is not None:
        return f"{query} created:<={rfc3339(until)}"
    return query


def _headers(token: str | None) -> dict[str, str]:
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class GitHubSource:
    id = "github"
    name = "GitHub"
    description = (
        "Searches GitHub issues and pull requests; works without a token at a low rate "
        "limit (set BYTESTACK_GITHUB_TOKEN for more)."
    )
    credentials: tuple[str, ...] = ()
    optional_credentials: tuple[str, ...] = ("github_token",)

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "github", ())
        return {"type": "github"}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        query = require_query(context, "GitHub")
        token = ((context.credentials or {}).get("github_token") or "").strip() or None
        url = with_params(
            base_url("github", DEFAULT_BASE) + "/search/issues",
            {
                "q": github_query(query, context.since, context.until),
                "sort": "created",
                "order": "desc",
                "per_page": clamp(context.limit, 1, MAX_PER_PAGE),
            },
        )
        document = fetch_json(
            url,
            context,
            headers=_headers(token),
            secrets=(token,) if token else (),
            auth_hint="BYTESTACK_GITHUB_TOKEN" if token else None,
        )
        items = expect(document, "items", host_of(url))
        return [record(item) for item in items if isinstance(item, dict)]


def record(item: dict) -> SourceRecord:
    user = item.get("user") or {}
    reactions = item.get("reactions") or {}
    return SourceRecord(
        source="github",
        url=item.get("html_url"),
        title=plain_text(item.get("title")),
        text=plain_text(item.get("body")),
        author=plain_text(user.get("login")),
        published_at=parse_date(item.get("created_at")),
        platform_id=as_id(item.get("node_id") or item.get("id")),
        metrics=metrics(
            comments=item.get("comments"),
            reactions=reactions.get("total_count"),
            likes=reactions.get("+1"),
        ),
        raw=item,
    )
