"""The mastodon source: an instance's public API, full-text search or a hashtag's timeline."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from . import FetchContext, SourceError, SourceRecord
from .common import (
    as_id,
    base_url,
    clamp,
    expect,
    fetch_json,
    host_of,
    metrics,
    parse_date,
    query_groups,
    reject_unknown_options,
    require_query,
    strip_html,
    unique_records,
    with_params,
)

DEFAULT_BASE = "https://mastodon.social"
MAX_LIMIT = 40  # Mastodon's ceiling for both endpoints
MAX_GROUPS = 5


def instance_url(value, index: int) -> str:
    """"mastodon.social" or "https://mastodon.social/" → "https://mastodon.social"."""
    if not isinstance(value, str) or not value.strip():
        raise SourceError(f"Source {index} (mastodon): 'instance' must be a host name or URL.")
    text = value.strip().rstrip("/")
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
    except ValueError:
        parts = None
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
        raise SourceError(
            f"Source {index} (mastodon): {value!r} is not an instance such as mastodon.social."
        )
    return f"{parts.scheme}://{parts.netloc}"


class MastodonSource:
    id = "mastodon"
    name = "Mastodon"
    description = (
        "Searches one Mastodon instance (mastodon.social unless the source names another); "
        "a #hashtag in the prompt reads that tag's public timeline."
    )
    credentials: tuple[str, ...] = ()

    @staticmethod
    def validate(item: dict, index: int) -> dict:
        reject_unknown_options(item, index, "mastodon", ("instance",))
        config = {"type": "mastodon"}
        if item.get("instance") is not None:
            config["instance"] = instance_url(item["instance"], index)
        return config

    @staticmethod
    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        instance = config.get("instance") or base_url("mastodon", DEFAULT_BASE)
        require_query(context, "Mastodon")
        groups = query_groups(context.query)[:MAX_GROUPS]
        statuses = (status for group in groups for status in _statuses(instance, group, context))
        return unique_records(record(status, instance) for status in statuses)


def _hashtag(group: str) -> str | None:
    for word in group.split():
        tag = word.lstrip("#")
        if word.startswith("#") and tag:
            return tag
    return None


def _statuses(instance: str, group: str, context: FetchContext) -> list[dict]:
    limit = clamp(context.limit, 1, MAX_LIMIT)
    tag = _hashtag(group)
    if tag:
        # A tag timeline is public on every instance; the other words of the group are
        # applied by the run's local filter.
        path = f"/api/v1/timelines/tag/{quote(tag, safe='')}"
        url = with_params(instance + path, {"limit": limit})
        found = fetch_json(url, context)
        if not isinstance(found, list):
            raise SourceError(f"{host_of(url)} returned JSON that is not a list of statuses.")
    else:
        url = with_params(
            f"{instance}/api/v2/search",
            {"q": group, "type": "statuses", "limit": limit, "resolve": "false"},
        )
        found = expect(fetch_json(url, context), "statuses", host_of(url))
    return [status for status in found if isinstance(status, dict)]


def _handle(account: dict) -> str | None:
    """"@user@instance": acct omits the instance for local accounts; their profile URL has it."""
    acct = account.get("acct") or account.get("username")
    if not acct:
        return None
    if "@" not in acct:
        host = urlsplit(account.get("url") or "").hostname
        if host:
            acct = f"{acct}@{host}"
    return "@" + acct


def record(status: dict, instance: str) -> SourceRecord:
    # A boost carries the boosted post; the post itself is the record.
    original = status.get("reblog") if isinstance(status.get("reblog"), dict) else status
    account = original.get("account") or {}
    text = strip_html(original.get("content"))
    if original.get("spoiler_text"):
        text = f"{original['spoiler_text']} — {text or ''}".strip(" —")
    return SourceRecord(
        source="mastodon",
        url=original.get("url") or original.get("uri"),
        title=None,  # statuses have no title
        text=text,
        author=_handle(account),
        published_at=parse_date(original.get("created_at")),
        # Status ids are per instance; the URI is the same everywhere.
        platform_id=as_id(original.get("uri") or f"{host_of(instance)}:{original.get('id')}"),
        metrics=metrics(
            likes=original.get("favourites_count"),
            reposts=original.get("reblogs_count"),
            comments=original.get("replies_count"),
        ),
        raw=status,
    )
