"""The rss source on real-world feeds, on hostile input, and the record fingerprints."""

from __future__ import annotations

import codecs
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from feeds import REALWORLD

from webapp.fingerprint import canonical_url, fingerprint
from webapp.sources import FetchContext, SourceError, normalise_sources
from webapp.sources.http import FetchPolicy
from webapp.sources.rss import RSSSource, parse_feed

FEEDS = REALWORLD / "feeds"
MANIFEST = REALWORLD / "MANIFEST.md"
ABSENT = f"the real-world corpus is not here ({REALWORLD}); it lives next to the repository"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # feedparser's own


def manifest_counts() -> dict[str, int]:
    """feeds/<name> → the manifest's item count ("items" column of the Feeds table)."""
    counts: dict[str, int] = {}
    lines = MANIFEST.read_text(encoding="utf-8").split("## Feeds", 1)[1].split("\n## ", 1)[0]
    header: list[str] | None = None
    for line in lines.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            continue
        if set(cells[0]) <= {"-", ":"}:
            continue
        path = cells[header.index("path")].strip("`")
        counts[path.removeprefix("feeds/")] = int(cells[header.index("items")].split()[0])
    return counts


def corpus() -> list:
    if not MANIFEST.exists() or not FEEDS.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=ABSENT))]
    return [pytest.param(name, count, id=name) for name, count in sorted(manifest_counts().items())]


def read(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


needs_corpus = pytest.mark.skipif(not FEEDS.is_dir(), reason=ABSENT)


# --- the real-world corpus -------------------------------------------------------------------


@needs_corpus
def test_the_manifest_lists_every_feed_in_the_folder():
    assert sorted(manifest_counts()) == sorted(p.name for p in FEEDS.iterdir())
    assert len(manifest_counts()) == 20


@pytest.mark.parametrize(("name", "count"), corpus())
def test_every_real_world_feed_parses_to_its_manifest_count(name, count):
    records = parse_feed(read(name))
    assert len(records) == count
    for record in records:
        assert record.source == "rss"
        assert record.url or record.title
        assert record.published_at is None or record.published_at.tzinfo is not None
        for text in (record.title, record.text, record.author):
            assert text is None or "\ufffd" not in text  # no mojibake from a wrong encoding


@needs_corpus
@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("rss2-ibash-windows-1251.xml", "Цитата #17703"),
        ("rss2-jn-pt-iso-8859-1.rss", "Mãe de utente é a nova presidente da Rar"),
        ("rss2-kc0011-gb2312-odddates.rss", "建国35周年纪念，华表，和平鸽"),
        ("rss2-uol-noticias-undeclared-latin1-ptdates.rss", "Ibope: Bolsonaro perde de Haddad"),
        ("atom-heise-developer.atom", "Java-Anwendungsserver: Red Hat gibt Wild"),
        ("jsonfeed1-daringfireball.json", "The Talk Show: ‘I Do Like Throwing a Bab"),
    ],
)
def test_titles_in_every_encoding_decode_to_the_right_characters(name, title):
    assert parse_feed(read(name))[0].title.startswith(title)


@needs_corpus
def test_feeds_without_usable_dates_give_undated_records():
    assert all(r.published_at is None for r in parse_feed(read("rss090-heise-newsticker.rdf")))
    # Portuguese day and month names: unreadable, so undated rather than guessed.
    uol = parse_feed(read("rss2-uol-noticias-undeclared-latin1-ptdates.rss"))
    assert all(r.published_at is None for r in uol)


@needs_corpus
@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("rss2-medscape-est-dates.rss", datetime(2025, 11, 5, 18, 52, 10, tzinfo=UTC)),  # 13:52 EST
        ("podcast-giantbomb-large.rss", datetime(2019, 10, 1, 22, 30, tzinfo=UTC)),  # 14:30 PST
        ("rss1-biorxiv.rdf", datetime(2019, 8, 27, tzinfo=UTC)),  # date only
        ("rss2-kc0011-gb2312-odddates.rss", datetime(2020, 1, 10, 14, 33, tzinfo=UTC)),  # 2020/1/10
    ],
)
def test_odd_date_formats_are_read_as_the_right_instant(name, first):
    assert parse_feed(read(name))[0].published_at == first


@needs_corpus
def test_json_feed_items_carry_url_author_and_date():
    records = parse_feed(read("jsonfeed11-3960-journal.json"))
    assert all(r.url and r.url.startswith("https://") for r in records)
    assert all(r.published_at is not None for r in records)
    assert records[0].author
    assert records[0].platform_id


@needs_corpus
def test_a_large_podcast_feed_parses_within_seconds():
    started = time.perf_counter()
    records = parse_feed(read("podcast-giantbomb-large.rss"))
    assert len(records) == 730
    assert time.perf_counter() - started < 10
    assert records[0].raw.get("enclosures")


@needs_corpus
def test_the_source_reads_a_local_file_only_when_allowed(tmp_path):
    context = FetchContext(FetchPolicy(), str(FEEDS), None, None, 100, "")
    config = {"type": "rss", "url": str(FEEDS / "rss2-reddit-frontpage.rss")}
    assert len(RSSSource.fetch(config, context)) == 24
    context.local_files_dir = None
    with pytest.raises(SourceError, match="Local files are not allowed"):
        RSSSource.fetch(config, context)


LOCAL_FEED = (
    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item><title>Local</title>'
    "<link>https://x.example.com/1</link></item></channel></rss>"
)


@pytest.fixture
def feeds_dir(tmp_path) -> Path:
    folder = tmp_path / "feeds"
    (folder / "team").mkdir(parents=True)
    (folder / "team" / "acme feed.xml").write_text(LOCAL_FEED)
    (tmp_path / "secret.xml").write_text(LOCAL_FEED.replace("Local", "Secret"))
    return folder


def read_local(url: str, folder: Path, max_bytes: int = 1024 * 1024):
    context = FetchContext(FetchPolicy(max_bytes=max_bytes), str(folder), None, None, 100, "")
    return RSSSource.fetch({"type": "rss", "url": url}, context)


def test_a_local_feed_is_read_by_path_file_url_or_name_inside_the_folder(feeds_dir):
    for url in (
        str(feeds_dir / "team" / "acme feed.xml"),
        (feeds_dir / "team" / "acme feed.xml").as_uri(),  # file:///…/acme%20feed.xml
        "team/acme feed.xml",
    ):
        assert [r.title for r in read_local(url, feeds_dir)] == ["Local"], url


@pytest.mark.parametrize(
    "url",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        "../secret.xml",
        "team/../../secret.xml",
        "/dev/zero",
        "file:///proc/self/environ",
    ],
)
def test_a_file_outside_the_folder_is_refused(feeds_dir, url):
    with pytest.raises(SourceError, match="outside the folder local feeds are read from"):
        read_local(url, feeds_dir)


def test_a_link_inside_the_folder_that_leads_out_of_it_is_refused(feeds_dir):
    (feeds_dir / "link.xml").symlink_to(feeds_dir.parent / "secret.xml")
    (feeds_dir / "zero.xml").symlink_to("/dev/zero")
    for name in ("link.xml", "zero.xml"):
        with pytest.raises(SourceError, match="outside the folder"):
            read_local(str(feeds_dir / name), feeds_dir)


def test_only_regular_files_are_read_and_a_fifo_does_not_block(feeds_dir):
    os.mkfifo(feeds_dir / "pipe.xml")
    started = time.monotonic()
    with pytest.raises(SourceError, match="is not a regular file"):
        read_local(str(feeds_dir / "pipe.xml"), feeds_dir)
    assert time.monotonic() - started < 2
    with pytest.raises(SourceError, match="is not a regular file"):
        read_local(str(feeds_dir / "team"), feeds_dir)


def test_a_local_file_over_the_size_cap_is_refused(feeds_dir):
    (feeds_dir / "big.xml").write_text(LOCAL_FEED + " " * 2048)
    with pytest.raises(SourceError, match="larger than the response size cap"):
        read_local("big.xml", feeds_dir, max_bytes=1024)


def test_a_file_url_naming_another_machine_is_refused(feeds_dir):
    with pytest.raises(SourceError, match="another machine"):
        read_local("file://fileserver/share/feed.xml", feeds_dir)


# --- hostile input ---------------------------------------------------------------------------

LAUGHS = '<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10)
)


def bomb(prolog: str = "", entities: str = LAUGHS, body: str = "&lol9;") -> str:
    return (
        f'<?xml version="1.0"?>{prolog}<!DOCTYPE rss [{entities}]>'
        f'<rss version="2.0"><channel><title>t</title><item><title>{body}</title>'
        "<link>https://x.example.com/1</link></item></channel></rss>"
    )


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(bomb().encode(), id="billion-laughs"),
        pytest.param(
            bomb(entities='<!ENTITY xxe SYSTEM "file:///etc/passwd">', body="&xxe;").encode(),
            id="external-entity",
        ),
        pytest.param(
            bomb(entities='<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;', body="x").encode(),
            id="parameter-entity",
        ),
        pytest.param(
            bomb(entities='<!ENTITY small "EXPANDED">', body="&small;").encode(),
            id="harmless-looking-entity",
        ),
        pytest.param(
            bomb(prolog="<!--" + "x" * 70_000 + "-->").encode(), id="after-64k-of-comment"
        ),
        pytest.param(bomb(prolog="\n" * 70_000).encode(), id="after-64k-of-whitespace"),
        pytest.param(
            bomb().replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16"),
            id="utf-16",
        ),
    ],
)
def test_documents_declaring_entities_are_refused_with_a_clear_error(document):
    started = time.perf_counter()
    with pytest.raises(SourceError) as caught:
        parse_feed(document)
    assert "entities" in str(caught.value)
    assert "refused" in str(caught.value)
    assert time.perf_counter() - started < 2


REFUSED = "The feed declares a DOCTYPE or entities, which feeds never need; refused for safety."


def declared(encoding: str, document: str) -> str:
    return document.replace('<?xml version="1.0"?>', f'<?xml version="1.0" encoding="{encoding}"?>')


EXPANDING = bomb(entities='<!ENTITY small "EXPANDED">', body="&small;")


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(declared("UTF-32", EXPANDING).encode("utf-32-le"), id="utf-32le"),
        pytest.param(declared("UTF-32", EXPANDING).encode("utf-32-be"), id="utf-32be"),
        pytest.param(
            codecs.BOM_UTF32_LE + declared("UTF-32", EXPANDING).encode("utf-32-le"),
            id="utf-32le-bom",
        ),
        pytest.param(
            codecs.BOM_UTF32_BE + declared("UTF-32", EXPANDING).encode("utf-32-be"),
            id="utf-32be-bom",
        ),
        pytest.param(declared("cp037", EXPANDING).encode("cp037"), id="ebcdic-cp037"),
        pytest.param(declared("cp500", EXPANDING).encode("cp500"), id="ebcdic-cp500"),
        pytest.param(declared("UTF-16", EXPANDING).encode("utf-16"), id="utf-16"),
        pytest.param(declared("UTF-16BE", EXPANDING).encode("utf-16-be"), id="utf-16be"),
        pytest.param(declared("ISO-8859-1", EXPANDING).encode("latin-1"), id="iso-8859-1"),
    ],
)
def test_entities_are_refused_in_every_encoding_the_feed_parser_reads(document):
    """The check reads the document as feedparser will, not in what expat alone can read."""
    with pytest.raises(SourceError) as caught:
        parse_feed(document)
    assert str(caught.value) == REFUSED


NETSCAPE = (
    '<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
    '"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"><channel>'
    "<title>t</title><item><title>Old</title><link>https://x.example.com/1</link></item>"
    "</channel></rss>"
)


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(NETSCAPE.encode(), id="utf-8"),
        pytest.param(declared("UTF-16", NETSCAPE).encode("utf-16"), id="utf-16"),
        pytest.param(declared("UTF-16LE", NETSCAPE).encode("utf-16-le"), id="utf-16le"),
        pytest.param(declared("UTF-32", NETSCAPE).encode("utf-32"), id="utf-32"),
    ],
)
def test_a_doctype_without_entities_is_refused_too(document):
    with pytest.raises(SourceError) as caught:
        parse_feed(document)
    assert str(caught.value) == REFUSED


@pytest.mark.parametrize(
    "prolog",
    [
        pytest.param("<!-- a -- b --><!DOCTYPE rss>", id="doctype-after-a-broken-comment"),
        pytest.param("<!-- a -- b -->\n<!entity x 'y'>", id="lower-case-entity"),
        pytest.param(
            '<!--\n<!DOCTYPE rss [\n<!ENTITY small "EXPANDED">\n]>\n-->',
            id="declarations-in-a-comment",
        ),
    ],
)
def test_declarations_the_loose_parser_would_read_are_refused(prolog):
    # feedparser's fallback reads declarations before the root by pattern, even from a
    # comment, and would expand `&small;` as EXPANDED.
    document = (
        f'<?xml version="1.0"?>{prolog}<rss version="2.0"><channel><title>t</title>'
        "<item><title>A &small;</title><link>https://x.example.com/1</link></item>"
        "</channel></rss>"
    )
    with pytest.raises(SourceError) as caught:
        parse_feed(document.encode())
    assert str(caught.value) == REFUSED


def test_a_feed_not_well_formed_before_its_root_still_parses_without_declarations():
    document = (
        '<?xml version="1.0"?><!-- a -- b --><rss version="2.0"><channel><title>t</title>'
        "<item><title>Loose</title><link>https://x.example.com/1</link></item></channel></rss>"
    )
    assert [r.title for r in parse_feed(document.encode())] == ["Loose"]


def feed_titled(title: str, encoding: str) -> str:
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
        f"<title>t</title><item><title>{title}</title><link>https://x.example.com/1</link>"
        "</item></channel></rss>"
    )


@pytest.mark.parametrize(
    ("title", "encoding", "codec"),
    [
        ("Цитата № 17703", "UTF-16", "utf-16"),
        ("Mãe de utente é presidente", "UTF-16", "utf-16-be"),
        ("建国35周年纪念", "UTF-16", "utf-16-le"),
        ("Mãe de utente é presidente", "ISO-8859-1", "latin-1"),
        ("Цитата № 17703", "windows-1251", "cp1251"),
        ("Größe", "UTF-32", "utf-32"),
        ("Straße café", "cp037", "cp037"),
        ("建国35周年纪念", "gb2312", "gb2312"),
        ("Ünïcödé", "UTF-8", "utf-8-sig"),
    ],
)
def test_feeds_in_other_encodings_still_parse_to_the_right_characters(title, encoding, codec):
    document = feed_titled(title, encoding).encode(codec)
    if codec in ("utf-16-be", "utf-16-le"):
        document = "\ufeff".encode(codec) + document
    assert [r.title for r in parse_feed(document)] == [title]


def test_an_html_page_with_its_doctype_is_reported_as_no_feed():
    for page in (
        b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
        b"<!doctype html>\n<html lang=en><head><title>Home</title><body><p>Hi<br></body>",
    ):
        with pytest.raises(SourceError) as caught:
            parse_feed(page)
        assert str(caught.value).startswith("Not a readable RSS, Atom or JSON feed")


def test_a_body_naming_a_local_file_is_not_read_as_that_file(tmp_path):
    # feedparser.parse(bytes) opens bytes that name an existing file.
    local = tmp_path / "feed.xml"
    local.write_bytes(feed_titled("Local secret", "UTF-8").encode())
    with pytest.raises(SourceError, match="Not a readable RSS, Atom or JSON feed"):
        parse_feed(str(local).encode())


def test_a_feed_quoting_entity_syntax_in_its_text_is_not_refused():
    escaped = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>XML tips</title>'
        "<item><title>Declaring entities safely</title><link>https://x.example.com/1</link>"
        '<description><![CDATA[Never write &lt;!ENTITY lol "lol"&gt; or <!ENTITY x "y"> '
        "in a feed.]]></description></item></channel></rss>"
    )
    records = parse_feed(escaped.encode())
    assert [r.title for r in records] == ["Declaring entities safely"]
    assert '<!ENTITY lol "lol">' in records[0].text


def test_a_malformed_document_never_expands_the_entities_it_declares():
    # A broken comment before the DOCTYPE: the strict parser stops, the loose one takes over.
    document = bomb(
        prolog="<!-- a -- b -->", entities='<!ENTITY small "EXPANDED">', body="A &small;"
    )
    try:
        records = parse_feed(document.encode())
    except SourceError:
        return
    assert records and all("EXPANDED" not in (r.title or "") for r in records)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"   \n\t ", "empty"),
        (b"\x00\x01\x02binary\xff\xfe", "Not a readable RSS, Atom or JSON feed"),
        (b"just some words, not a feed", "Not a readable RSS, Atom or JSON feed"),
        (
            b"<!DOCTYPE html><html><head><title>Home</title></head><body><p>Hi</p></body></html>",
            "Not a readable RSS, Atom or JSON feed",
        ),
        (b'<?xml version="1.0"?><note><to>x</to></note>', "Not a readable RSS, Atom or JSON feed"),
        (b"[1, 2, 3]", "Not a readable RSS, Atom or JSON feed"),
        (b'{"foo": 1}', "Not a JSON Feed: there is no 'items' list."),
        (b'{"items": "x"}', "Not a JSON Feed"),
        (b"{bad json", "Not a readable JSON Feed"),
        (b'{"items": [], "x": "\xff"}', "Not a readable JSON Feed"),
    ],
)
def test_not_a_feed_gives_a_readable_error(content, message):
    with pytest.raises(SourceError) as caught:
        parse_feed(content)
    assert message in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_a_valid_but_empty_feed_is_no_error():
    for document in (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title></channel></rss>',
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>x</title></feed>',
        b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
    ):
        assert parse_feed(document) == []


def test_a_byte_order_mark_and_odd_json_items_are_tolerated():
    bom = "\ufeff<rss version='2.0'><channel><item><title>BOM</title></item></channel></rss>"
    assert [r.title for r in parse_feed(bom.encode("utf-8"))] == ["BOM"]
    mixed = (
        b'{"items": [1, "x", null, '
        b'{"id": 7, "title": "<b>Kept</b>", "url": "https://a.example/1"}]}'
    )
    records = parse_feed(mixed)
    assert [(r.title, r.platform_id) for r in records] == [("Kept", "7")]


def test_markup_in_titles_and_texts_becomes_plain_text():
    document = (
        '<rss version="2.0"><channel><item><title>&lt;b&gt;Acme&lt;/b&gt; &amp; co</title>'
        "<description>&lt;p&gt;Hello &lt;script&gt;x()&lt;/script&gt;&lt;/p&gt;</description>"
        "<link>https://x.example.com/1</link></item></channel></rss>"
    )
    record = parse_feed(document.encode())[0]
    assert record.title == "Acme & co"
    assert "<" not in record.text


@pytest.mark.parametrize(
    "source",
    [
        {"type": "rss"},
        {"type": "rss", "url": ""},
        {"type": "rss", "url": 5},
        {"type": "rss", "url": "gopher://x.example.com/"},
        {"type": "rss", "url": "http://"},
        {"type": "rss", "url": "http://[::1"},
        "javascript:alert(1)",
    ],
)
def test_bad_rss_source_configurations_are_refused_with_a_reason(source):
    with pytest.raises(SourceError) as caught:
        normalise_sources([source])
    assert str(caught.value).startswith("Source 1")


# --- fingerprints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://example.com/a?utm_source=x&utm_medium=y", "https://example.com/a"),
        ("https://example.com/a?id=3&utm_campaign=z&UTM_TERM=q", "https://example.com/a?id=3"),
        ("https://example.com/a?fbclid=1&gclid=2&mc_eid=3", "https://example.com/a"),
        ("https://example.com/a#comments", "https://example.com/a"),
        ("https://www.example.com/a", "https://example.com/a"),
        ("https://WWW.Example.COM/a", "https://example.com/a"),
        ("https://example.com/a/", "https://example.com/a"),
        ("https://example.com/", "https://example.com/"),
        ("https://example.com", "https://example.com/"),
        ("http://example.com/a", "https://example.com/a"),
        ("http://example.com:80/a", "https://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
        ("  https://example.com/a  ", "https://example.com/a"),
    ],
)
def test_canonical_url(url, canonical):
    assert canonical_url(url) == canonical


def test_the_path_keeps_its_case_and_real_parameters_count():
    assert canonical_url("https://example.com/A") != canonical_url("https://example.com/a")
    assert canonical_url("https://example.com/a?id=1") != canonical_url(
        "https://example.com/a?id=2"
    )
    assert canonical_url("https://www2.example.com/a") == "https://www2.example.com/a"


def test_the_same_story_has_one_fingerprint_across_schemes_and_tracking():
    variants = [
        "https://www.example.com/story/1/?utm_source=rss#top",
        "http://example.com/story/1",
        "HTTPS://EXAMPLE.COM/story/1/",
    ]
    keys = {fingerprint("rss", url, None, None) for url in variants}
    assert len(keys) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", keys.pop())
    assert fingerprint("rss", "https://example.com/story/2", None, None) != fingerprint(
        "rss", "https://example.com/story/1", None, None
    )


def test_without_a_url_the_platform_id_and_then_the_title_identify_a_record():
    assert fingerprint("rss", None, "guid-1", "A") == fingerprint("rss", None, "guid-1", "B")
    assert fingerprint("rss", None, "guid-1", "A") != fingerprint("rss", None, "guid-2", "A")
    assert fingerprint("rss", None, "guid-1", None) != fingerprint("reddit", None, "guid-1", None)
    assert fingerprint("rss", None, None, " Same Title ") == fingerprint(
        "rss", None, None, "same title"
    )
    assert fingerprint("rss", "https://example.com/1", "guid-1", None) != fingerprint(
        "rss", None, "guid-1", None
    )


def test_a_records_fingerprint_is_stable_across_parses(tmp_path: Path):
    document = (
        b'<rss version="2.0"><channel><item><title>Acme</title><guid>g1</guid>'
        b"<link>https://www.example.com/acme/?utm_source=feed</link></item></channel></rss>"
    )
    first, second = parse_feed(document)[0], parse_feed(document)[0]
    key = fingerprint(first.source, first.url, first.platform_id, first.title)
    assert key == fingerprint(second.source, second.url, second.platform_id, second.title)
    assert key == fingerprint("rss", "https://example.com/acme", None, None)
    assert first.published_at is None or first.published_at < datetime.now(UTC) + timedelta(days=1)
