"""The youtube source: YouTube Data API v3 search.list (videos, newest first); needs an API key."""

from __future__ import annotations

import re

from . import FetchContext, SourceRecord
from .common import (
    base_url,
    clamp,
    clean_text,
    expect,
    fetch_json,
    host_of,
    parse_date,
    reject_unknown_options,
    require_credential,
    require_query,
    rfc3339,
    with_params,
)

DEFAULT_BASE = "https://www.googleapis.com"
WATCH_URL = "https://www.youtube.com/watch?v="
MAX_RESULTS = 50  # search.list's maxResults ceiling
_OR = re.compile(r"\s+OR\s+")


def youtube_query(query: str) -> str:
    # YouTube writes OR as "|"; quotes and -exclusions it reads as they are.
    return _OR.sub(" | ", query)


class YouTubeSource:
    id = "youtube"
    name = "YouTube"
    description = "Searches YouTube videos with the YouTube Data API v3."
    credentials: tuple[str, ...] = ("youtube_api_key",)

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "youtube", ())
        return {"type": "youtube"}

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        key = require_credential(context, YouTubeSource.name, "youtube_api_key")
        query = require_query(context, YouTubeSource.name)
        url = with_params(
            base_url("youtube", DEFAULT_BASE) + "/youtube/v3/search",
            {
                "part": "snippet",
                "q": youtube_query(query),
                "type": "video",
                "order": "date",
                "maxResults": clamp(context.limit, 1, MAX_RESULTS),
                "publishedAfter": rfc3339(context.since) if context.since else None,
                "publishedBefore": rfc3339(context.until) if context.until else None,
                "key": key,
            },
        )
        document = fetch_json(
            url, context, secrets=(key,), auth_hint="BYTESTACK_YOUTUBE_API_KEY"
        )
        items = expect(document, "items", host_of(url))
        return [record(item) for item in items if _video_id(item)]


def _video_id(item) -> str | None:
    if not isinstance(item, dict) or not isinstance(item.get("id"), dict):
        return None
    return item["id"].get("videoId")


def record(item: dict) -> SourceRecord:
    video_id = _video_id(item)
    snippet = item.get("snippet") or {}
    # search.list carries no view or like counts (that is videos.list, one more quota call).
    return SourceRecord(
        source="youtube",
        url=WATCH_URL + video_id,
        title=clean_text(snippet.get("title")),
        text=clean_text(snippet.get("description")),
        author=clean_text(snippet.get("channelTitle")),
        published_at=parse_date(snippet.get("publishedAt")),
        platform_id=video_id,
        metrics={},
        raw=item,
    )
