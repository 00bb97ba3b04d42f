"""The built-in sources against a local server replaying real API answers, the registry, the
plugins and GET /v1/sources.

Every source is pointed at the FeedServer through BYTESTACK_SOURCE_<ID>_URL; a recording
handler keeps each request's path, parameters and headers, so the tests see what a source
sent as well as what it made of the answer.
"""

from __future__ import annotations

import json
import socket
import sys
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import EntryPoint
from urllib.parse import parse_qs

import pytest
from feeds import REALWORLD, FeedServer

from webapp.sources import (
    BUILTIN_SOURCES,
    SOURCE_TYPES,
    FetchContext,
    SourceError,
    SourceRecord,
    fetch_source,
    list_sources,
    load_sources,
    normalise_sources,
)
from webapp.sources import plugins as plugins_module
from webapp.sources.common import credentials_from_environment, parse_date, query_groups
from webapp.sources.http import FetchPolicy
from webapp.sources.reddit import time_window
from webapp.sources.x import time_bounds

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # feedparser's own

SEARCH_SOURCES = ("reddit", "hackernews", "youtube", "x", "mastodon", "bluesky", "news", "github")
JSON_TYPE = "application/json; charset=utf-8"


# --- helpers --------------------------------------------------------------------------------


def realworld(relative: str) -> bytes:
    """A captured real response; the test is skipped when the corpus is not next to the repo."""
    path = REALWORLD / relative
    if not path.is_file():
        pytest.skip(f"real-world fixture {relative} is absent ({REALWORLD} is not next to the "
                    "repository), so this source is not replayed against a real answer")
    return path.read_bytes()


def realworld_json(relative: str):
    return json.loads(realworld(relative))


@dataclass
class Request:
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class Recorder:
    """The FeedServer with every GET recorded (its handler class wrapped, feeds.py untouched)."""

    def __init__(self, server: FeedServer):
        self.server = server
        self.requests: list[Request] = []
        requests = self.requests
        handler = server.httpd.RequestHandlerClass

        class Recording(handler):
            def do_GET(self):
                path, _, query = self.path.partition("?")
                params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
                headers = {k.lower(): v for k, v in self.headers.items()}
                requests.append(Request(path, params, headers))
                super().do_GET()

        server.httpd.RequestHandlerClass = Recording

    @property
    def base(self) -> str:
        return self.server.base

    def serve(self, path: str, body, **options) -> str:
        return self.server.serve(path, body, **options)

    def serve_json(self, path: str, body, **options) -> str:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.server.serve(path, data, type=JSON_TYPE, **options)

    def to(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    def last(self, path: str) -> Request:
        found = self.to(path)
        assert found, f"no request to {path}; saw {[r.path for r in self.requests]}"
        return found[-1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def no_public_network(monkeypatch):
    """Every source starts pointed at a closed loopback port: a source that ignored its
    BYTESTACK_SOURCE_<ID>_URL would fail here instead of reaching the internet."""
    dead = f"http://127.0.0.1:{closed_port()}"
    for source_id in SEARCH_SOURCES:
        monkeypatch.setenv(f"BYTESTACK_SOURCE_{source_id.upper()}_URL", dead)
    for name in ("BYTESTACK_YOUTUBE_API_KEY", "BYTESTACK_X_BEARER_TOKEN", "BYTESTACK_GITHUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api(feed_server, monkeypatch):
    recorder = Recorder(feed_server)

    def point(source_id: str) -> None:
        monkeypatch.setenv(f"BYTESTACK_SOURCE_{source_id.upper()}_URL", feed_server.base)

    recorder.point = point
    return recorder


def context(
    query: str = "", since=None, until=None, limit: int = 100, **credentials
) -> FetchContext:
    return FetchContext(
        policy=FetchPolicy(timeout=5, allow_private=True),
        local_files_dir=None,
        since=since,
        until=until,
        limit=limit,
        query=query,
        credentials=credentials,
    )


def fetch(source_id: str, ctx: FetchContext, **config) -> list[SourceRecord]:
    """Through the registry, as a run does: validate the config, then fetch."""
    [validated] = normalise_sources([{"type": source_id, **config}])
    return fetch_source(validated, ctx)


def aware_utc(record: SourceRecord) -> bool:
    return record.published_at is not None and record.published_at.utcoffset() == timedelta(0)


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- reddit ---------------------------------------------------------------------------------


def test_reddit_reads_a_real_search_listing_and_sends_the_query(api):
    api.point("reddit")
    api.serve_json("/search.json", realworld("api/reddit-search-posts.json"))
    since = utcnow() - timedelta(hours=3)

    records = fetch("reddit", context('coronavirus OR "pregnancy test"', since=since, limit=25))

    assert len(records) == 2
    first = records[0]
    assert first.source == "reddit"
    assert first.title == "Pregnancy test"
    assert first.url == "https://www.reddit.com/r/WatchPeopleDieInside/comments/hybow9/pregnancy_test/"
    assert first.author == "chocolat_ice_cream"
    assert first.published_at == datetime.fromtimestamp(1595787264, UTC)
    assert first.platform_id == "t3_hybow9"
    assert first.metrics == {"score": 103829, "comments": 3748}
    assert first.raw["subreddit"] == "WatchPeopleDieInside"
    assert records[1].title == "Brazilian president Jair Bolsonaro tests positive for coronavirus"
    assert all(aware_utc(r) for r in records)
    sent = api.last("/search.json").params
    assert sent == {
        "q": 'coronavirus OR "pregnancy test"',
        "sort": "new",
        "limit": "25",
        "t": "day",
        "raw_json": "1",
    }


def test_reddit_caps_the_limit_at_100(api):
    api.point("reddit")
    api.serve_json("/search.json", {"kind": "Listing", "data": {"children": [], "after": None}})
    assert fetch("reddit", context("acme", limit=1000)) == []
    assert api.last("/search.json").params["limit"] == "100"
    assert api.last("/search.json").params["t"] == "all"  # no since: the whole index


@pytest.mark.parametrize(
    ("age", "window"),
    [
        (timedelta(minutes=30), "hour"),
        (timedelta(hours=20), "day"),
        (timedelta(days=3), "week"),
        (timedelta(days=20), "month"),
        (timedelta(days=200), "year"),
        (timedelta(days=800), "all"),
    ],
)
def test_reddit_time_window_is_the_smallest_that_covers_since(age, window):
    moment = utcnow()
    assert time_window(moment - age, moment) == window


def test_reddit_answers_rate_limit_with_a_sentence(api):
    api.point("reddit")
    api.serve_json("/search.json", b'{"message": "Too Many Requests", "error": 429}', status=429)
    with pytest.raises(SourceError) as caught:
        fetch("reddit", context("acme"))
    host = api.base.removeprefix("http://")
    assert str(caught.value) == f"{host} answered HTTP 429: rate limited, try a later run."


def test_reddit_html_instead_of_json_is_named(api):
    api.point("reddit")
    api.serve("/search.json", b"<!DOCTYPE html><html><body>blocked</body></html>", type="text/html")
    with pytest.raises(SourceError, match="returned something that is not JSON") as caught:
        fetch("reddit", context("acme"))
    assert "<!DOCTYPE html>" in str(caught.value)


def test_reddit_json_without_a_listing_is_named(api):
    api.point("reddit")
    api.serve_json("/search.json", {"message": "Forbidden", "error": 403})
    with pytest.raises(SourceError, match="without the object 'data'"):
        fetch("reddit", context("acme"))


def test_search_sources_refuse_an_empty_query_before_any_request(api):
    for source_id in ("reddit", "mastodon", "bluesky", "news", "github"):
        api.point(source_id)
        with pytest.raises(SourceError, match="has no words to search for"):
            fetch(source_id, context("  "))
    assert api.requests == []


# --- hackernews -----------------------------------------------------------------------------


def test_hackernews_reads_real_search_by_date_and_sends_the_window(api):
    api.point("hackernews")
    api.serve_json("/api/v1/search_by_date", realworld("api/hn-algolia-search-by-date.json"))
    since = datetime(2026, 8, 9, 0, 0, tzinfo=UTC)
    until = datetime(2026, 8, 10, 0, 0, tzinfo=UTC)

    records = fetch("hackernews", context("AI", since=since, until=until, limit=50))

    assert len(records) == 5
    first = records[0]
    assert first.source == "hackernews"
    assert first.title == "Porter Airlines Flight to Toronto cancelled over child standing on seat"
    assert first.url == "https://news.ycombinator.com/item?id=49232944"
    assert first.raw["url"].startswith("https://www.cbc.ca/news/")
    assert first.author == "gpi"
    assert first.published_at == datetime(2026, 8, 9, 16, 33, 20, tzinfo=UTC)
    assert first.metrics == {"score": 1, "comments": 0}
    assert first.platform_id == "49232944"
    ask = records[1]
    assert ask.title == "Ask HN: Anything as Fast as Google's AI Mode in the CLI?"
    # story_text is HTML: entities decoded, <p> a space, no tags left.
    assert ask.text.startswith("I'm realising that Google's AI mode is the fastest")
    assert "library Y. Is it possible" in ask.text and "<p>" not in ask.text
    assert all(aware_utc(r) for r in records)
    sent = api.last("/api/v1/search_by_date").params
    assert sent == {
        "query": "AI",
        "tags": "(story,comment)",
        "numericFilters": f"created_at_i>{int(since.timestamp())},"
        f"created_at_i<{int(until.timestamp()) + 1}",
        "hitsPerPage": "50",
    }


def test_hackernews_comment_from_the_real_2014_bundle(api):
    bundle = realworld_json("api/hn-algolia-multi-endpoint-bundle.json")
    reply = next(
        entry["reply"] for entry in bundle
        if entry["url"] == "/api/v1/search_by_date?hitsPerPage=1&tags=(comment)"
    )
    api.point("hackernews")
    api.serve_json("/api/v1/search_by_date", reply)

    [comment] = fetch("hackernews", context(""))

    assert comment.title == "Comment on: Fibonacci Flim-Flam"
    assert comment.url == "https://news.ycombinator.com/item?id=7919431"
    assert comment.author == "gohrt"
    assert comment.text.startswith("A perennial HN favorite https://hn.algolia.com/?q=Fibonacci")
    assert "What's fascinating" in comment.text
    assert comment.published_at == datetime(2014, 6, 20, 3, 39, 55, tzinfo=UTC)
    assert comment.metrics == {"score": 1}  # num_comments is null on a comment
    # An empty prompt asks for the newest items; no date window given, no filter sent.
    assert api.last("/api/v1/search_by_date").params == {
        "query": "", "tags": "(story,comment)", "hitsPerPage": "100",
    }


def test_hackernews_one_request_per_or_group_and_no_duplicates(api):
    api.point("hackernews")
    api.serve_json("/api/v1/search_by_date", realworld("api/hn-algolia-search-by-date.json"))

    records = fetch("hackernews", context('acme OR "widget co" -jobs'))

    sent = [request.params["query"] for request in api.to("/api/v1/search_by_date")]
    assert sent == ["acme -jobs", '"widget co" -jobs']
    assert len(records) == 5  # both answers held the same five hits


def test_hackernews_503_and_404_are_explained(api):
    api.point("hackernews")
    api.serve_json("/api/v1/search_by_date", b"{}", status=503)
    with pytest.raises(SourceError, match=r"answered HTTP 503: the service is failing"):
        fetch("hackernews", context("acme"))
    api.server.routes.clear()  # now nothing is there
    with pytest.raises(SourceError, match=r"answered HTTP 404: .*check the source's URL"):
        fetch("hackernews", context("acme"))


# --- youtube --------------------------------------------------------------------------------


def test_youtube_without_a_key_says_how_to_add_one(api):
    api.point("youtube")
    with pytest.raises(SourceError) as caught:
        fetch("youtube", context("surfing"))
    assert str(caught.value) == (
        "YouTube needs an API key: set BYTESTACK_YOUTUBE_API_KEY or add it in Settings → Sources."
    )
    assert api.requests == []


def test_youtube_reads_real_search_list_and_sends_key_and_window(api):
    api.point("youtube")
    api.serve_json("/youtube/v3/search", realworld("api/youtube-search-list-keywords.json"))
    since = datetime(2019, 12, 1, 8, 30, tzinfo=UTC)
    until = datetime(2019, 12, 6, tzinfo=UTC)

    records = fetch(
        "youtube",
        context("surfing OR surf", since=since, until=until, youtube_api_key="AIza-test-key"),
    )

    assert len(records) == 25
    first = records[0]
    assert first.url == "https://www.youtube.com/watch?v=gQ_1zX-F_No"
    assert first.title == "SURFING HAWAII\u2019S BEST WAVE WITH MY GIRLFRIEND (PIPELINE)"
    assert first.author == "Jamie O'Brien"
    assert first.published_at == datetime(2019, 12, 5, 19, 0, 10, tzinfo=UTC)
    assert first.platform_id == "gQ_1zX-F_No"
    assert first.text.startswith("SOME FUN BARRELS IN THE MORNING")
    # The API sends titles HTML-escaped.
    assert records[1].title == "SURFING PERFECT PIPE & BACKDOOR || SUNRISE SHACK!"
    assert all(r.source == "youtube" and aware_utc(r) for r in records)
    sent = api.last("/youtube/v3/search").params
    assert sent == {
        "part": "snippet",
        "q": "surfing | surf",  # YouTube's OR
        "type": "video",
        "order": "date",
        "maxResults": "50",
        "publishedAfter": "2019-12-01T08:30:00Z",
        "publishedBefore": "2019-12-06T00:00:00Z",
        "key": "AIza-test-key",
    }


def test_youtube_live_event_search(api):
    api.point("youtube")
    api.serve_json("/youtube/v3/search", realworld("api/youtube-search-list-event.json"))
    records = fetch("youtube", context("coronavirus", limit=10, youtube_api_key="k"))
    assert len(records) == 25
    assert records[0].title == "[LIVE] Coronavirus Pandemic: Real Time Counter, World Map, News"
    assert records[0].author == "Roylab Stats"
    assert api.last("/youtube/v3/search").params["maxResults"] == "10"


def test_youtube_403_names_the_key_setting_and_never_the_key(api):
    api.point("youtube")
    api.serve_json("/youtube/v3/search", b'{"error": {"code": 403}}', status=403)
    with pytest.raises(SourceError) as caught:
        fetch("youtube", context("surfing", youtube_api_key="SECRET-KEY-123"))
    message = str(caught.value)
    assert "answered HTTP 403" in message and "BYTESTACK_YOUTUBE_API_KEY" in message
    assert "SECRET-KEY-123" not in message


def test_youtube_connection_error_masks_the_key_in_the_url(monkeypatch):
    monkeypatch.setenv("BYTESTACK_SOURCE_YOUTUBE_URL", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(SourceError) as caught:
        fetch("youtube", context("surfing", youtube_api_key="SECRET/KEY+123"))
    message = str(caught.value)
    assert "Could not fetch" in message and "key=***" in message
    assert "SECRET" not in message


# --- x --------------------------------------------------------------------------------------


def test_x_without_a_token_says_how_to_add_one(api):
    api.point("x")
    with pytest.raises(SourceError) as caught:
        fetch("x", context("nyc"))
    assert str(caught.value) == (
        "X (Twitter) needs a bearer token: set BYTESTACK_X_BEARER_TOKEN or add it in "
        "Settings → Sources."
    )
    assert api.requests == []


def test_x_reads_real_recent_search_with_expansions(api):
    api.point("x")
    api.serve_json(
        "/2/tweets/search/recent", realworld("api/x-v2-recent-search-with-expansions.json")
    )
    records = fetch(
        "x",
        context("from:TwitterDev OR snowman", since=utcnow() - timedelta(days=30), limit=5,
                x_bearer_token="bearer-abc"),
    )

    assert len(records) == 4
    first = records[0]
    assert first.source == "x"
    assert first.author == "@happycamper"
    assert first.url == "https://x.com/happycamper/status/1276035977375477760"
    assert first.text.startswith("@snowman Ooo, thanks error message")
    assert first.title is None
    assert first.published_at == datetime(2020, 6, 25, 6, 14, 19, tzinfo=UTC)
    assert first.platform_id == "1276035977375477760"
    assert records[1].author == "@snowman"
    request = api.last("/2/tweets/search/recent")
    assert request.headers["authorization"] == "Bearer bearer-abc"
    sent = request.params
    assert sent["query"] == "from:TwitterDev OR snowman"
    assert sent["max_results"] == "10"  # X's minimum
    assert sent["expansions"] == "author_id"
    assert "public_metrics" in sent["tweet.fields"].split(",")
    # 30 days ago is outside recent search: the start is moved to just inside 7 days.
    start = parse_date(sent["start_time"])
    assert timedelta(days=6, hours=23) < utcnow() - start < timedelta(days=7)
    assert "end_time" not in sent


def test_x_real_nyc_search_without_users_and_with_escaped_text(api):
    api.point("x")
    data = realworld_json("api/x-v2-recent-search-nyc.json")
    # As X answers when tweet.fields asks for public_metrics (the capture did not ask).
    data["data"][2]["public_metrics"] = {
        "retweet_count": 3, "reply_count": 1, "like_count": 12, "quote_count": 0,
        "impression_count": 480,
    }
    api.serve_json("/2/tweets/search/recent", data)

    records = fetch("x", context("nyc", x_bearer_token="t"))

    assert len(records) == 10
    camps = records[2]
    assert camps.author == "15004848"  # no users expansion: the author's id
    assert camps.url == "https://x.com/i/web/status/1275840891014561796"
    assert "(not a worry in this setting) & kids from MD, NYC" in camps.text
    assert camps.metrics == {"likes": 12, "reposts": 3, "comments": 1, "quotes": 0, "views": 480}
    assert records[0].metrics == {}


def test_x_no_matches_is_an_empty_list(api):
    api.point("x")
    api.serve_json("/2/tweets/search/recent", {"meta": {"result_count": 0}})
    assert fetch("x", context("nothing-matches-this", x_bearer_token="t")) == []


def test_x_refused_token(api):
    api.point("x")
    api.serve_json("/2/tweets/search/recent", b'{"title": "Unauthorized"}', status=401)
    with pytest.raises(SourceError) as caught:
        fetch("x", context("nyc", x_bearer_token="expired-token"))
    message = str(caught.value)
    assert message.endswith(
        "answered HTTP 401: the credentials were refused; check BYTESTACK_X_BEARER_TOKEN."
    )
    assert "expired-token" not in message


def test_x_time_bounds():
    moment = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
    start, end = time_bounds(moment - timedelta(hours=2), moment - timedelta(hours=1), moment)
    assert (start, end) == ("2026-05-10T10:00:00Z", "2026-05-10T11:00:00Z")
    start, end = time_bounds(None, moment, moment)
    assert (start, end) == (None, None)  # an end in the last seconds is refused by X


# --- mastodon -------------------------------------------------------------------------------


def test_mastodon_search_reads_statuses(api):
    api.point("mastodon")
    statuses = realworld_json("api/mastodon-timeline-tag.json")
    # /api/v2/search answers {accounts, statuses, hashtags}; the statuses are real ones.
    api.serve_json("/api/v2/search", {"accounts": [], "statuses": statuses, "hashtags": []})

    records = fetch("mastodon", context("diaspora", limit=100))

    assert len(records) == 20
    first = records[0]
    assert first.source == "mastodon"
    assert first.url == "https://mastodon.social/users/jeroenpraat/updates/2014093"
    assert first.author == "@jeroenpraat@mastodon.social"
    assert first.published_at == datetime(2017, 4, 21, 15, 0, 42, tzinfo=UTC)
    assert first.text.startswith("@alexl @deadsuperhero Yes, but not only #Mastodon should be")
    assert "<" not in first.text and "&" not in first.text
    assert first.metrics == {"likes": 0, "reposts": 0}
    assert first.platform_id == "tag:mastodon.social,2017-04-21:objectId=3610569:objectType=Status"
    assert api.last("/api/v2/search").params == {
        "q": "diaspora", "type": "statuses", "limit": "40", "resolve": "false",
    }


def test_mastodon_hashtag_reads_the_tag_timeline(api):
    api.point("mastodon")
    api.serve_json("/api/v1/timelines/tag/mastodon", realworld("api/mastodon-timeline-tag.json"))

    records = fetch("mastodon", context("#mastodon", limit=15))

    assert len(records) == 20
    assert api.last("/api/v1/timelines/tag/mastodon").params == {"limit": "15"}
    assert api.to("/api/v2/search") == []


def test_mastodon_instance_from_the_source_config(api, monkeypatch):
    # The environment points elsewhere: the job's own instance wins.
    monkeypatch.setenv("BYTESTACK_SOURCE_MASTODON_URL", f"http://127.0.0.1:{closed_port()}")
    public = realworld("api/mastodon-timeline-public-mstdn-jp.json")
    api.serve_json("/api/v1/timelines/tag/jp", public)

    records = fetch("mastodon", context("#jp"), instance=api.base)

    assert len(records) == 20
    first = records[0]
    # A local account's acct has no instance; its profile URL does.
    assert first.author == "@iorin0225@mstdn.jp"
    assert first.url == "https://mstdn.jp/@iorin0225/172429"
    assert first.text == "電話であれ、テキストであれ、伝達能力はしっかり鍛えてほしい。"
    assert records[1].author == "@cocoabottle@mastodon.cloud"


def test_mastodon_boost_is_recorded_as_the_boosted_post(api):
    api.point("mastodon")
    original = realworld_json("api/mastodon-timeline-tag.json")[0]
    booster = {**original["account"], "acct": "booster", "url": "https://example.social/@booster"}
    boost = {**original, "id": "9", "reblog": original, "content": "", "account": booster,
             "url": None, "uri": "https://example.social/users/booster/statuses/9/activity"}
    api.serve_json("/api/v2/search", {"accounts": [], "statuses": [boost], "hashtags": []})

    [record] = fetch("mastodon", context("diaspora"))

    assert record.author == "@jeroenpraat@mastodon.social"
    assert record.url == original["url"]
    assert record.raw["id"] == "9"


@pytest.mark.parametrize(
    ("given", "stored"),
    [("mstdn.jp", "https://mstdn.jp"), ("https://fosstodon.org/", "https://fosstodon.org")],
)
def test_mastodon_instance_is_normalised(given, stored):
    assert normalise_sources([{"type": "mastodon", "instance": given}]) == [
        {"type": "mastodon", "instance": stored}
    ]


@pytest.mark.parametrize("bad", ["", "ftp://mstdn.jp", "https://mstdn.jp/about", 42])
def test_mastodon_bad_instance_is_refused(bad):
    with pytest.raises(SourceError, match=r"Source 1 \(mastodon\)"):
        normalise_sources([{"type": "mastodon", "instance": bad}])


# --- bluesky --------------------------------------------------------------------------------


def test_bluesky_reads_real_search_posts(api):
    api.point("bluesky")
    api.serve_json("/xrpc/app.bsky.feed.searchPosts", realworld("api/bluesky-search-posts.json"))
    since = datetime(2023, 12, 13, tzinfo=UTC)
    until = datetime(2023, 12, 15, 6, 0, tzinfo=UTC)

    records = fetch("bluesky", context("redistricting", since=since, until=until, limit=25))

    assert len(records) == 23
    first = records[0]
    assert first.source == "bluesky"
    assert first.url == "https://bsky.app/profile/planetcarnival.bsky.social/post/3kghpycppiw2n"
    assert first.author == "@planetcarnival.bsky.social"
    assert first.text.startswith("I was upset last year when redistricting meant")
    assert first.published_at == datetime(2023, 12, 14, 0, 37, 20, 615000, tzinfo=UTC)
    assert first.metrics == {"likes": 1, "reposts": 0, "comments": 0}
    assert first.platform_id == "at://did:plc:xrs7uicyfcp5qbnhnqy7kucb/app.bsky.feed.post/3kghpycppiw2n"
    assert all(aware_utc(r) for r in records)
    assert api.last("/xrpc/app.bsky.feed.searchPosts").params == {
        "q": "redistricting",
        "sort": "latest",
        "limit": "25",
        "since": "2023-12-13T00:00:00Z",
        "until": "2023-12-15T06:00:00Z",
    }


def test_bluesky_or_groups_are_separate_searches(api):
    api.point("bluesky")
    api.serve_json("/xrpc/app.bsky.feed.searchPosts", realworld("api/bluesky-search-posts.json"))
    records = fetch("bluesky", context("redistricting OR gerrymander -spam"))
    sent = [r.params["q"] for r in api.to("/xrpc/app.bsky.feed.searchPosts")]
    assert sent == ["redistricting", "gerrymander"]
    assert len(records) == 23


# --- news -----------------------------------------------------------------------------------


GOOGLE_NEWS_RSS = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<generator>NFE/5.0</generator><title>"acme corp" - Google News</title>
<link>https://news.google.com/search?q=%22acme+corp%22&amp;hl=en-US&amp;gl=US&amp;ceid=US:en</link>
<language>en-US</language><webMaster>news-webmaster@google.com</webMaster>
<copyright>Copyright 2026 Google. All rights reserved.</copyright>
<lastBuildDate>Thu, 30 Apr 2026 08:05:12 GMT</lastBuildDate>
<description>Google News</description>
<item><title>Acme Corp opens a new plant in Ohio - Reuters</title>
<link>https://news.google.com/rss/articles/CBMiVWh0dHBzOi8vd3d3LnJldXRlcnMuY29tL2FjbWU?oc=5</link>
<guid isPermaLink="false">CBMiVWh0dHBzOi8vd3d3LnJldXRlcnMuY29tL2FjbWU</guid>
<pubDate>Thu, 30 Apr 2026 07:12:00 GMT</pubDate>
<description>&lt;a href="https://news.google.com/rss/articles/CBMiVWh0?oc=5" target="_blank"&gt;Acme Corp opens a new plant in Ohio&lt;/a&gt;&amp;nbsp;&amp;nbsp;&lt;font color="#6f6f6f"&gt;Reuters&lt;/font&gt;</description>
<source url="https://www.reuters.com">Reuters</source></item>
<item><title>Why Acme Corp's shares fell 4% - The Motley Fool</title>
<link>https://news.google.com/rss/articles/CBMiQmh0dHBzOi8vd3d3LmZvb2wuY29tL2FjbWU?oc=5</link>
<guid isPermaLink="false">CBMiQmh0dHBzOi8vd3d3LmZvb2wuY29tL2FjbWU</guid>
<pubDate>Wed, 29 Apr 2026 21:40:00 GMT</pubDate>
<description>&lt;a href="https://news.google.com/rss/articles/CBMiQmh0?oc=5"&gt;Why Acme Corp's shares fell 4%&lt;/a&gt;</description>
<source url="https://www.fool.com">The Motley Fool</source></item>
</channel></rss>"""


def test_news_reads_a_news_search_feed_and_sends_the_window(api):
    api.point("news")
    api.serve("/rss/search", GOOGLE_NEWS_RSS)
    since = datetime(2026, 4, 29, 8, 0, tzinfo=UTC)

    records = fetch("news", context('"acme corp"', since=since))

    assert [r.title for r in records] == [
        "Acme Corp opens a new plant in Ohio - Reuters",
        "Why Acme Corp's shares fell 4% - The Motley Fool",
    ]
    first = records[0]
    assert first.source == "news"
    assert first.url == "https://news.google.com/rss/articles/CBMiVWh0dHBzOi8vd3d3LnJldXRlcnMuY29tL2FjbWU?oc=5"
    assert first.published_at == datetime(2026, 4, 30, 7, 12, tzinfo=UTC)
    assert first.text == "Acme Corp opens a new plant in Ohio Reuters"
    sent = api.last("/rss/search").params
    assert sent == {"q": '"acme corp" after:2026-04-28', "hl": "en", "gl": "US", "ceid": "US:en"}


def test_news_any_real_rss_feed_parses(api):
    api.point("news")
    api.serve("/rss/search", realworld("feeds/rss2-guardian-us.rss"))
    records = fetch("news", context("trump", until=datetime(2018, 1, 20, tzinfo=UTC)))
    assert len(records) == 55
    assert all(r.source == "news" and r.title and r.url for r in records)
    assert api.last("/rss/search").params["q"] == "trump before:2018-01-21"


def test_news_consent_page_instead_of_a_feed(api):
    api.point("news")
    consent = b"<!doctype html><html><body><form>Before you continue</form>"
    api.serve("/rss/search", consent, type="text/html")
    with pytest.raises(SourceError, match="Not a readable RSS, Atom or JSON feed"):
        fetch("news", context("acme"))


# --- github ---------------------------------------------------------------------------------


def test_github_reads_real_issue_search_without_a_token(api):
    api.point("github")
    api.serve_json("/search/issues", realworld("api/github-search-issues-freecodecamp.json"))
    since = datetime(2022, 7, 1, tzinfo=UTC)

    records = fetch("github", context("meta-tags", since=since, limit=30))

    assert len(records) == 23
    first = records[0]
    assert first.source == "github"
    assert first.title == "Adding meta-tags in Portuguese"
    assert first.url == "https://github.com/freeCodeCamp/freeCodeCamp/pull/46973"
    assert first.author == "DanielRosa74"
    assert first.published_at == datetime(2022, 7, 20, 20, 53, 4, tzinfo=UTC)
    assert first.metrics == {"comments": 2, "reactions": 0, "likes": 0}
    assert first.platform_id == "PR_kwDOAbI7X847x6vT"
    assert first.text.startswith("Checklist:")
    assert sum(r.metrics["comments"] for r in records) == 32
    request = api.last("/search/issues")
    assert request.params == {
        "q": "meta-tags created:>=2022-07-01T00:00:00Z",
        "sort": "created",
        "order": "desc",
        "per_page": "30",
    }
    assert request.headers["accept"] == "application/vnd.github+json"
    assert "authorization" not in request.headers


def test_github_docs_example_with_a_token_and_a_range(api):
    api.point("github")
    api.serve_json("/search/issues", realworld("api/github-search-issues-docs-example.json"))
    since = datetime(2009, 7, 1, tzinfo=UTC)
    until = datetime(2009, 8, 1, tzinfo=UTC)

    [issue] = fetch("github", context("line number", since=since, until=until,
                                      github_token="ghp_test"))

    assert issue.title == "Line Number Indexes Beyond 20 Not Displayed"
    assert issue.author == "Nick3C"
    assert issue.metrics == {"comments": 15}
    request = api.last("/search/issues")
    assert request.headers["authorization"] == "Bearer ghp_test"
    assert request.params["q"] == "line number created:2009-07-01T00:00:00Z..2009-08-01T00:00:00Z"


def test_github_rate_limit_403(api):
    api.point("github")
    api.serve_json("/search/issues", b'{"message": "API rate limit exceeded"}', status=403)
    with pytest.raises(SourceError, match="answered HTTP 403: access refused"):
        fetch("github", context("acme"))


# --- web ------------------------------------------------------------------------------------


def test_web_reads_the_real_hacker_news_front_page(api):
    url = api.serve("/news", realworld("pages/hn-frontpage-2022.html"), type="text/html")
    config = {"url": url, "item": "tr.athing", "title": "td.title a.titlelink",
              "link": "td.title a.titlelink"}

    records = fetch("web", context(), **config)

    assert len(records) == 30
    assert records[0].title == "Why Is the Web So Monotonous? Google"
    assert records[0].url == "https://reasonablypolymorphic.com/blog/monotonous-web/index.html"
    tell = next(r for r in records if r.title.startswith("Tell HN"))
    # The one relative link, resolved against the page URL.
    assert tell.url == api.base + "/item?id=32349006"
    assert all(r.source == "web" and r.published_at is None for r in records)


def test_web_reads_dates_and_text_from_a_real_blog_home(api):
    url = api.serve("/", realworld("pages/sixcolors-home.html"), type="text/html; charset=utf-8")
    config = {"url": url, "item": "div.post, div.minipost", "title": "h1",
              "link": "h1 a", "date": "p.dateline", "text": "div.column2 p"}

    records = fetch("web", context(), **config)

    assert len(records) == 20
    first = records[0]
    assert first.title == "Transmission Bit Torrent client possibly infected with malware"
    assert first.url.startswith("http://researchcenter.paloaltonetworks.com/2016/03/")
    # "March  6, 2016  1:46 PM PT": Pacific standard time then, UTC-8.
    assert first.published_at == datetime(2016, 3, 6, 21, 46, tzinfo=UTC)
    assert first.text.startswith("Some copies of Transmission")
    # Podcast entries write "March  6, 2016 • 1 hour, 31 minutes": no time to read.
    podcast = next(r for r in records if r.title.startswith("The Incomparable #290"))
    assert podcast.published_at is None
    dated = [r for r in records if r.published_at is not None]
    assert len(dated) == 17  # 20 posts, 3 of them podcasts


def test_web_real_deals_page_with_datetime_attributes(api):
    url = api.serve("/hot/", realworld("pages/bensbargains-deals-list.html"), type="text/html")
    config = {"url": url, "item": "article.deal", "title": ".deal-title a",
              "link": ".deal-title a", "date": ".deal-meta time", "text": ".deal-description"}

    records = fetch("web", context(), **config)

    assert len(records) == 100
    first = records[0]
    assert first.title == "Samsung Galaxy Note 3 No Contract Smart Phone $250 at"
    assert first.url == (
        api.base
        + "/redirect/samsung-galaxy-note-3-unlocked-gsm-smart-phone-250-at-at-amp-t-362355/"
    )
    # <time datetime="2014-04-19 07:22:51">4 hours ago</time>: the attribute is the date.
    assert first.published_at == datetime(2014, 4, 19, 7, 22, 51, tzinfo=UTC)
    assert first.text.startswith("AT&T Wireless has the refurbished Samsung Galaxy Note 3")
    assert all(r.published_at is not None for r in records)


def test_web_links_resolve_against_the_final_url_after_a_redirect(api):
    page = (
        "<html><head><meta charset='iso-8859-1'></head><body><ul>"
        "<li class=row><a href='story-1.html'>Caf\xe9 opens</a></li>"
        "<li class=row><a href='/top/story-2.html'>Second</a></li>"
        "<li class=row><span>an ad without a link or title</span></li>"
        "</ul></body></html>"
    ).encode("latin-1")
    api.serve("/news/list/index.html", page, type="text/html")
    start = api.serve("/go", b"", redirect=api.base + "/news/list/index.html")

    records = fetch("web", context(), url=start, item="li.row", title="a", link="a")

    assert [r.title for r in records] == ["Café opens", "Second"]
    assert [r.url for r in records] == [
        api.base + "/news/list/story-1.html",
        api.base + "/top/story-2.html",
    ]


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"url": "https://example.com/", "item": "li", "title": "a"},
         "needs a CSS selector for 'link'"),
        ({"url": "https://example.com/", "item": "li[", "title": "a", "link": "a"},
         "not a valid CSS selector"),
        ({"url": "ftp://example.com/", "item": "li", "title": "a", "link": "a"}, "not an http"),
        ({"item": "li", "title": "a", "link": "a"}, "needs a 'url'"),
        ({"url": "https://example.com/", "item": "li", "title": "a", "link": "a", "css": "x"},
         "unknown option 'css'"),
    ],
)
def test_web_config_is_checked_when_saved(config, reason):
    with pytest.raises(SourceError, match=reason):
        normalise_sources([{"type": "web", **config}])


# --- json -----------------------------------------------------------------------------------


def test_json_maps_a_real_api_with_jmespath(api):
    url = api.serve_json("/api/v1/search_by_date", realworld("api/hn-algolia-search-by-date.json"))
    config = {"url": url, "items": "hits[?points > `0`]", "title": "title",
              "author": "author", "date": "created_at_i", "id": "objectID",
              "text": "story_text"}

    records = fetch("json", context(), **config)

    assert len(records) == 5
    first = records[0]
    assert first.source == "json"
    assert first.title == "Porter Airlines Flight to Toronto cancelled over child standing on seat"
    # No url expression: the default finds "url".
    assert first.url.startswith("https://www.cbc.ca/news/canada/toronto/porter-airlines")
    assert first.author == "gpi"
    assert first.published_at == datetime(2026, 8, 9, 16, 33, 20, tzinfo=UTC)
    assert first.platform_id == "49232944"
    assert records[1].text.startswith("I'm realising that Google's AI mode")
    assert first.raw["objectID"] == "49232944"


def test_json_nested_items_with_defaults_for_the_rest(api):
    url = api.serve_json("/r/search.json", realworld("api/reddit-search-posts.json"))
    config = {"url": url, "items": "data.children[].data", "title": "title",
              "author": "author", "date": "created_utc"}

    records = fetch("json", context(), **config)

    assert [r.title for r in records] == [
        "Pregnancy test", "Brazilian president Jair Bolsonaro tests positive for coronavirus",
    ]
    assert records[0].url == "https://v.redd.it/ra4qnt8bt8d51"
    assert records[0].published_at == datetime.fromtimestamp(1595787264, UTC)


def test_json_defaults_read_a_json_feed(api):
    url = api.serve_json("/feed.json", realworld("feeds/jsonfeed1-daringfireball.json"))
    records = fetch("json", context(), url=url, items="items")
    assert len(records) == 48
    assert all(r.title and r.url and r.published_at for r in records)
    assert all(aware_utc(r) for r in records)
    assert records[0].author == "John Gruber"
    assert "<" not in (records[0].text or "")


def test_json_relative_link_resolves_against_the_api_url(api):
    url = api.serve_json("/api/posts", {"posts": [{"name": "One", "href": "/p/1"}]})
    [record] = fetch("json", context(), url=url, items="posts")
    assert (record.title, record.url) == ("One", api.base + "/p/1")


def test_json_items_that_match_nothing_are_explained(api):
    url = api.serve_json("/api/posts", {"data": []})
    with pytest.raises(SourceError, match="'results' found nothing"):
        fetch("json", context(), url=url, items="results")


def test_json_not_json(api):
    url = api.serve("/api/posts", b"<html>login</html>", type="text/html")
    with pytest.raises(SourceError, match="returned something that is not JSON"):
        fetch("json", context(), url=url, items="posts")


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"url": "https://example.com/api"}, "needs 'items'"),
        ({"url": "https://example.com/api", "items": "data.[["}, "not valid JMESPath"),
        ({"url": "https://example.com/api", "items": "data", "title": "a..b"},
         "not valid JMESPath"),
        ({"url": "file:///etc/passwd", "items": "data"}, "not an http"),
    ],
)
def test_json_config_is_checked_when_saved(config, reason):
    with pytest.raises(SourceError, match=reason):
        normalise_sources([{"type": "json", **config}])


# --- registry -------------------------------------------------------------------------------


def test_normalise_accepts_plain_ids_and_objects():
    assert normalise_sources(
        ["reddit", " hackernews ", "Reddit", {"type": "github"}, {"type": "x"},
         "https://example.com/feed.xml"]
    ) == [
        {"type": "reddit"}, {"type": "hackernews"}, {"type": "reddit"}, {"type": "github"},
        {"type": "x"}, {"type": "rss", "url": "https://example.com/feed.xml"},
    ]


def test_normalise_refuses_unknown_sources_and_options():
    with pytest.raises(SourceError) as caught:
        normalise_sources(["myspace"])
    message = str(caught.value)
    assert "unknown source 'myspace'" in message and "hackernews" in message
    assert "linkedin" not in message  # only sources that can be used are offered
    with pytest.raises(SourceError, match=r"Source 2 \(reddit\): unknown option 'subreddit'"):
        normalise_sources(["hackernews", {"type": "reddit", "subreddit": "python"}])


@pytest.mark.parametrize("platform", ["linkedin", "tiktok", "instagram", "facebook"])
def test_platforms_without_a_public_api_say_how_plugins_add_them(platform):
    with pytest.raises(SourceError) as caught:
        normalise_sources([platform])
    message = str(caught.value)
    assert "has no public API" in message
    assert "'bytestack.sources'" in message and f"name {platform!r}" in message
    with pytest.raises(SourceError, match="has no public API"):
        SOURCE_TYPES[platform].fetch({"type": platform}, context("acme"))


def test_list_sources_statuses_follow_the_credentials():
    without = {item["id"]: item for item in list_sources({})}
    assert set(without) >= {
        "rss", "reddit", "hackernews", "youtube", "x", "mastodon", "bluesky", "news",
        "github", "web", "json", "linkedin", "tiktok", "instagram", "facebook",
    }
    assert without["reddit"]["status"] == "ready"
    assert without["github"]["status"] == "ready"  # the token is optional
    assert without["youtube"]["status"] == "needs_credentials"
    assert "BYTESTACK_YOUTUBE_API_KEY" in without["youtube"]["detail"]
    assert without["x"]["status"] == "needs_credentials"
    assert without["linkedin"]["status"] == "unavailable"
    assert without["rss"]["detail"]
    assert all(set(item) == {"id", "name", "status", "detail"} for item in without.values())

    both = {item["id"]: item["status"] for item in list_sources(
        {"youtube_api_key": "k", "x_bearer_token": "t"}
    )}
    assert both["youtube"] == both["x"] == "ready"


def test_credentials_from_environment(monkeypatch):
    monkeypatch.setenv("BYTESTACK_YOUTUBE_API_KEY", " yt-key ")
    monkeypatch.setenv("BYTESTACK_X_BEARER_TOKEN", "")
    monkeypatch.setenv("BYTESTACK_GITHUB_TOKEN", "ghp_1")
    assert credentials_from_environment() == {"youtube_api_key": "yt-key", "github_token": "ghp_1"}


def test_every_builtin_search_source_reads_its_url_from_the_environment(api, monkeypatch):
    """The dead-port default of this module is what a source would hit if it ignored its
    BYTESTACK_SOURCE_<ID>_URL; here each is pointed at the server and must arrive."""
    credentials = {"youtube_api_key": "k", "x_bearer_token": "t"}
    for source_id in SEARCH_SOURCES:
        api.point(source_id)
        with pytest.raises(SourceError, match="404"):
            fetch(source_id, context("acme", **credentials))
    assert len(api.requests) == len(SEARCH_SOURCES)


# --- plugins --------------------------------------------------------------------------------


PLUGIN_MODULE = '''
from datetime import datetime, timezone
from webapp.sources import SourceError, SourceRecord


class LinkedInSource:
    name = "LinkedIn (plugin)"
    description = "LinkedIn posts through the company's partner API."
    credentials = ("linkedin_token",)

    @staticmethod
    def validate(item, index):
        return {"type": "ignored", "org": item.get("org", "acme")}

    @staticmethod
    def fetch(config, context):
        return [SourceRecord(source="linkedin", url="https://www.linkedin.com/posts/1",
                             title=None, text=f"{config['org']} hiring", author="Acme",
                             published_at=datetime(2026, 1, 1, tzinfo=timezone.utc))]


class BuggySource:
    name = "Buggy"

    @staticmethod
    def validate(item, index):
        return {}

    @staticmethod
    def fetch(config, context):
        yield 1 / 0


class NotASource:
    name = "nothing here"
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Fake installed plugins: a module on sys.path and entry points naming its classes."""
    (tmp_path / "bytestack_test_plugin.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "bytestack.sources"
    found = [
        EntryPoint("linkedin", "bytestack_test_plugin:LinkedInSource", group),
        EntryPoint("buggy", "bytestack_test_plugin:BuggySource", group),
        EntryPoint("hollow", "bytestack_test_plugin:NotASource", group),
        EntryPoint("broken", "bytestack_missing_module:Source", group),
        EntryPoint("rss", "bytestack_test_plugin:LinkedInSource", group),
    ]
    monkeypatch.setattr(
        plugins_module, "entry_points",
        lambda group: [entry for entry in found if entry.group == group],
    )
    load_sources()
    yield
    monkeypatch.undo()
    sys.modules.pop("bytestack_test_plugin", None)
    load_sources()
    assert "buggy" not in SOURCE_TYPES


def test_plugins_load_from_entry_points(plugins):
    listed = {item["id"]: item for item in list_sources({"linkedin_token": "t"})}
    # A plugin fills the place of a platform that has no built-in source.
    assert listed["linkedin"]["status"] == "ready"
    assert listed["linkedin"]["name"] == "LinkedIn (plugin)"
    without_token = {item["id"]: item for item in list_sources({})}
    assert without_token["linkedin"]["status"] == "needs_credentials"
    assert "'linkedin_token'" in without_token["linkedin"]["detail"]
    # Broken ones are listed as unavailable with their error; the app keeps working.
    assert listed["broken"]["status"] == "unavailable"
    assert "ModuleNotFoundError" in listed["broken"]["detail"]
    assert listed["hollow"]["status"] == "unavailable"
    assert "has no validate or fetch" in listed["hollow"]["detail"]
    # A plugin cannot take over a working built-in.
    assert SOURCE_TYPES["rss"] is BUILTIN_SOURCES["rss"]

    [config] = normalise_sources([{"type": "linkedin", "org": "globex"}])
    assert config == {"type": "linkedin", "org": "globex"}
    [record] = fetch_source(config, context("globex"))
    assert record.text == "globex hiring"
    with pytest.raises(SourceError, match=r"Source 1 \(broken\): The plugin"):
        normalise_sources(["broken"])


def test_a_plugin_bug_is_a_source_error_not_a_crash(plugins):
    [config] = normalise_sources(["buggy"])
    with pytest.raises(SourceError) as caught:
        fetch_source(config, context("acme"))
    assert str(caught.value) == (
        "The Buggy plugin failed to fetch: ZeroDivisionError: division by zero."
    )


def test_an_uninstalled_plugin_fails_its_source_with_a_reason():
    with pytest.raises(SourceError, match="'gone' is not installed"):
        fetch_source({"type": "gone"}, context("acme"))


# --- shared helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-12-05T19:00:10.000Z", datetime(2019, 12, 5, 19, 0, 10, tzinfo=UTC)),
        ("2014-04-19 07:22:51", datetime(2014, 4, 19, 7, 22, 51, tzinfo=UTC)),
        ("Tue, 01 Oct 2019 14:30:00 PST", datetime(2019, 10, 1, 22, 30, tzinfo=UTC)),
        ("Mon, 06 Sep 2021 16:45:00 +0200", datetime(2021, 9, 6, 14, 45, tzinfo=UTC)),
        ("July 4, 2016 1:00 PM PT", datetime(2016, 7, 4, 20, 0, tzinfo=UTC)),
        (1595787264, datetime(2020, 7, 26, 18, 14, 24, tzinfo=UTC)),
        (1595787264000, datetime(2020, 7, 26, 18, 14, 24, tzinfo=UTC)),
        ("1595787264", datetime(2020, 7, 26, 18, 14, 24, tzinfo=UTC)),
        ("4 hours ago", None),
        ("Fri", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_date(text, expected):
    assert parse_date(text) == expected


def test_query_groups():
    query = 'acme OR "widget co" launch -jobs -"hiring now"'
    assert query_groups(query) == ["acme", '"widget co" launch']
    assert query_groups(query, keep_exclusions=True) == [
        'acme -jobs -"hiring now"', '"widget co" launch -jobs -"hiring now"',
    ]


# --- GET /v1/sources ------------------------------------------------------------------------


def test_get_sources_over_the_api(client, api_key, monkeypatch):
    monkeypatch.setenv("BYTESTACK_YOUTUBE_API_KEY", "yt-key")

    response = client.get("/v1/sources", headers=api_key("read"))

    assert response.status_code == 200
    listed = {item["id"]: item for item in response.get_json()}
    assert listed["youtube"]["status"] == "ready"
    assert listed["x"]["status"] == "needs_credentials"
    assert "BYTESTACK_X_BEARER_TOKEN" in listed["x"]["detail"]
    assert listed["facebook"]["status"] == "unavailable"
    assert listed["hackernews"] == {
        "id": "hackernews", "name": "Hacker News", "status": "ready",
        "detail": listed["hackernews"]["detail"],
    }
    assert "yt-key" not in response.get_data(as_text=True)


def test_get_sources_needs_a_key(client):
    response = client.get("/v1/sources")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
