"""Full-text search across a project's records: the syntax, what each engine finds (the same
on SQLite and PostgreSQL: run with DATABASE_URL for the second), project isolation, the index
staying in step with deletes, highlighting that cannot be forged, odd input answered 200 or
422 (never 500), GET /v1/records and the Storage page's search box."""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_job
from helpers import stored_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update

from webapp.models import Job, Project, Record, Run
from webapp.schemas import SEARCH_MAX, SEARCH_WORDS_MAX
from webapp.storage import search
from webapp.storage.search_syntax import (
    SearchQuery,
    SearchSyntaxError,
    Term,
    parse_search,
    split_words,
)

T0 = datetime(2026, 4, 30, 8, 0, tzinfo=UTC)
SLOW = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# --- the syntax (pure) ---------------------------------------------------------------------


def shape(query: SearchQuery | None):
    """A parsed query as plain lists: alternatives of terms, and exclusions."""
    if query is None:
        return None
    return (
        [[" ".join(term.words) for term in terms] for terms in query.alternatives],
        [" ".join(term.words) for term in query.exclusions],
    )


@pytest.mark.parametrize(
    ("text", "alternatives", "exclusions"),
    [
        ("acme", [["acme"]], []),
        ("acme corp", [["acme", "corp"]], []),
        ('"acme corp"', [["acme corp"]], []),
        ('"acme corp" OR acmecorp -jobs', [["acme corp"], ["acmecorp"]], ["jobs"]),
        ("a b OR c", [["a", "b"], ["c"]], []),
        ("OR acme OR OR corp OR", [["acme"], ["corp"]], []),
        ('-"big deal" acme', [["acme"]], ["big deal"]),
        ("--acme corp", [["corp"]], ["acme"]),
        ("-OR acme", [["acme"]], ["OR"]),
        ("acme AND corp", [["acme", "corp"]], []),
        ("or and not near", [["or", "and", "not", "near"]], []),
        # A word is split where the index splits text: into a phrase of its pieces.
        ("e-mail example.com", [["e mail", "example com"]], []),
        ("o'brien foo_bar", [["o brien", "foo bar"]], []),
        ('"unbalanced phrase', [["unbalanced phrase"]], []),
        ('foo"bar baz"', [["foo", "bar baz"]], []),
        ("acme - -- !!! ??? ()", [["acme"]], []),
        ("al\x00pha", [["al pha"]], []),
        ("Café naïve 日本語 тест", [["Café", "naïve", "日本語", "тест"]], []),
        ("cafe\u0301 \u0301", [["cafe\u0301"]], []),  # a lone accent is no word
        ("🙂 acme 🙂", [["acme"]], []),
        ("title:acme NEAR(a b)", [["title acme", "NEAR a", "b"]], []),
    ],
)
def test_the_syntax_reads_words_phrases_or_and_exclusions(text, alternatives, exclusions):
    assert shape(parse_search(text, SEARCH_WORDS_MAX)) == (alternatives, exclusions)


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_a_blank_search_is_no_search(text):
    assert parse_search(text, SEARCH_WORDS_MAX) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-acme", "Add a word to find: “-acme” only leaves records out."),
        ('-"acme corp" -jobs', "Add a word to find: “-acme corp” only leaves records out."),
        ("!!!", "Nothing to search for: use letters or digits."),
        ('""', "Nothing to search for: use letters or digits."),
        ("-", "Nothing to search for: use letters or digits."),
        ("OR OR", "Nothing to search for: use letters or digits."),
        ("\x00", "Nothing to search for: use letters or digits."),
        (" ".join(["w"] * 33), "A search can have at most 32 words; this one has 33."),
        ("a-b-c-d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z-a-b-c-d-e-f-g", "at most 32"),
    ],
)
def test_a_search_that_cannot_run_says_why(text, message):
    with pytest.raises(SearchSyntaxError) as caught:
        parse_search(text, SEARCH_WORDS_MAX)
    assert message in caught.value.message


def test_each_engine_gets_every_word_quoted():
    query = parse_search('"acme corp" OR launch -"big deal" -x', SEARCH_WORDS_MAX)
    assert query.fts5() == '(("acme corp") OR ("launch")) NOT ("big deal" OR "x")'
    acme_corp = "('acme' & 'corp' & ('acme':A <-> 'corp':A | 'acme':B <-> 'corp':B | " \
        "'acme':C <-> 'corp':C))"
    big_deal = "('big' & 'deal' & ('big':A <-> 'deal':A | 'big':B <-> 'deal':B | " \
        "'big':C <-> 'deal':C))"
    assert query.tsquery() == f"(({acme_corp}) | ('launch')) & !{big_deal} & !'x'"
    assert query.tsquery(exclusions=False) == f"({acme_corp}) | ('launch')"


def test_quotes_and_backslashes_inside_a_word_stay_inside_its_quotes():
    """The parser never makes such a word; the quoting holds even if one were made by hand."""
    query = SearchQuery(alternatives=((Term(('a"b', "o'b\\")),),))
    assert query.fts5() == '("a""b o\'b\\")'
    assert query.tsquery() == (
        "(('a\"b' & 'o''b\\\\' & ('a\"b':A <-> 'o''b\\\\':A | 'a\"b':B <-> 'o''b\\\\':B | "
        "'a\"b':C <-> 'o''b\\\\':C)))"
    )


@given(st.text(max_size=80))
def test_any_text_parses_or_says_why(value):
    try:
        query = parse_search(value, SEARCH_WORDS_MAX)
    except SearchSyntaxError as exc:
        assert exc.message
        return
    if query is not None:
        words = [w for terms in query.alternatives for t in terms for w in t.words]
        assert words and all(w and '"' not in w and not w.isspace() for w in words)


# --- a corpus on the database --------------------------------------------------------------


def store(db, project, job=None, records=(), finished_at=T0) -> Run:
    """A completed run (a one-off query without `job`) with `records` (dicts of overrides),
    inserted as the ingest does: one Core bulk INSERT."""
    return stored_run(db, project, job, records, finished_at, record_defaults=_blank)


def _blank(run: Run, position: int) -> dict:
    return {"title": None, "text": None, "author": None}


@pytest.fixture
def other_project(app):
    from webapp.jobs.service import ensure_project

    return ensure_project("Other")


@pytest.fixture
def corpus(db, project, other_project):
    """Records that differ in one searchable way each; ids ascend in the order given."""
    alpha = make_job(project, name="Alpha watch")
    beta = make_job(project, name="Beta watch")
    first = store(
        db,
        project,
        alpha,
        [
            {"title": "Acme launches rocket", "text": "The big launch went well",
             "author": "Zoë Martin", "published_at": T0 - timedelta(days=1)},
            {"title": "Acme hires", "text": "Jobs at acme corp", "author": "Pat",
             "source": "reddit", "is_new": False, "published_at": T0 - timedelta(days=2)},
        ],
        T0,
    )
    query = store(
        db,
        project,
        None,
        [
            {"title": "Globex earnings", "text": "Café sales up; see example.com or e-mail us",
             "author": "Ann", "source": "news", "published_at": T0 - timedelta(days=3)},
        ],
        T0 + timedelta(hours=1),
    )
    second = store(
        db,
        project,
        beta,
        [
            # "Big" ends the title and "launch" starts the text: never the phrase "big launch".
            {"title": "Resume of a CAFE owner: Big", "text": "launch the thing",
             "author": "José", "published_at": T0 - timedelta(days=4)},
        ],
        T0 + timedelta(hours=2),
    )
    store(db, other_project, make_job(other_project, name="Theirs"),
          [{"title": "Acme secret rocket", "text": "café launch", "author": "Zoë"}], T0)
    ids = [r.public_id for r in db.session.scalars(
        select(Record).where(Record.project_id == project.id).order_by(Record.id))]
    return {"alpha": alpha, "beta": beta, "first": first, "query": query, "second": second,
            "rocket": ids[0], "hires": ids[1], "globex": ids[2], "resume": ids[3]}


def found(client, headers, q: str, **params) -> list[str]:
    """Ids GET /v1/records returns for `q`, in its order (one page of at most 1000)."""
    response = client.get("/v1/records", query_string={"q": q, "limit": 1000, **params},
                          headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()["data"]]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("acme", ["hires", "rocket"]),  # newest first
        ("ACME rocket", ["rocket"]),  # every word must match, in any field
        ("acme corp", ["hires"]),
        ('"big launch"', ["rocket"]),  # a phrase never spans title and text
        ("big launch", ["resume", "rocket"]),
        ("rocket OR earnings", ["globex", "rocket"]),
        ("acme hires OR globex", ["globex", "hires"]),
        ("acme -jobs", ["rocket"]),
        ('acme -"acme corp"', ["rocket"]),
        ("rocket OR earnings -globex", ["rocket"]),  # an exclusion applies to every alternative
        ("zoe", ["rocket"]),  # the author, diacritics folded
        ("martin", ["rocket"]),
        ("JOSÉ", ["resume"]),
        ("jose", ["resume"]),
        ("cafe", ["resume", "globex"]),
        ("café", ["resume", "globex"]),
        ("CAFÉ sales", ["globex"]),
        ("example.com", ["globex"]),  # punctuation splits words on both engines alike
        ("example", ["globex"]),
        ("e-mail", ["globex"]),
        ("mail", ["globex"]),
        ('"sales up see"', ["globex"]),  # punctuation between words keeps them a phrase
        ("launc", []),  # no stemming, no prefixes
        ("secret", []),  # the other project's record
    ],
)
def test_search_finds_the_same_records_on_every_engine(client, api_key, corpus, q, expected):
    assert found(client, api_key("read"), q) == [corpus[name] for name in expected]


def test_a_record_of_another_project_with_the_same_words_is_never_found(
    client, api_key, corpus, other_project
):
    ours = found(client, api_key("read"), "acme rocket")
    theirs = found(client, api_key("read", target=other_project), "acme rocket")
    assert ours == [corpus["rocket"]]
    assert len(theirs) == 1 and theirs != ours
    page = client.get("/storage/records?q=acme+rocket").get_data(as_text=True)
    assert "secret" not in page and "launches" in page


def test_an_outsider_searching_the_page_sees_only_their_project(persona, corpus):
    body = persona("outsider").get("/storage/records?q=acme").get_data(as_text=True)
    assert "Acme" not in body and "No records match" in body


def test_searches_combine_with_every_filter(client, api_key, db, project, corpus):
    headers = api_key("read")
    assert found(client, headers, "acme", job_id=corpus["alpha"].public_id) == [
        corpus["hires"], corpus["rocket"]]
    assert found(client, headers, "cafe", run_id=corpus["query"].public_id) == [corpus["globex"]]
    assert found(client, headers, "acme", source="reddit") == [corpus["hires"]]
    assert found(client, headers, "acme", new="true") == [corpus["rocket"]]
    assert found(client, headers, "acme", new="false") == [corpus["hires"]]
    assert found(client, headers, "cafe", since="2026-04-26T09:00:00Z") == [corpus["globex"]]
    assert found(client, headers, "acme", until="2026-04-28T09:00:00Z") == [corpus["hires"]]
    assert found(client, headers, "acme", since="2026-04-28", until="2026-04-30") == [
        corpus["hires"], corpus["rocket"]]
    empty = store(db, project, corpus["alpha"], [], T0 + timedelta(hours=5))
    assert found(client, headers, "acme", run_id=empty.public_id) == []


# --- the index stays in step with the records ----------------------------------------------


def assert_index_in_step(db) -> None:
    """SQLite: FTS5 compares its index with the records table itself ('integrity-check' with
    rank 1 reads the content table); PostgreSQL's column is computed from its own row."""
    if db.engine.dialect.name == "sqlite":
        db.session.execute(text("INSERT INTO records_fts (records_fts, rank) "
                                "VALUES ('integrity-check', 1)"))
        db.session.rollback()


def test_a_deleted_run_takes_its_records_out_of_the_search(client, api_key, db, project, corpus):
    headers = api_key("read")
    assert found(client, headers, "cafe") == [corpus["resume"], corpus["globex"]]
    # The newest run: its record ids are the highest, which SQLite hands out again.
    db.session.execute(delete(Run).where(Run.id == corpus["second"].id))  # ON DELETE CASCADE
    db.session.commit()
    assert_index_in_step(db)
    assert found(client, headers, "cafe") == [corpus["globex"]]
    reused = store(db, project, corpus["beta"], [{"title": "A plain title"}],
                   T0 + timedelta(hours=3))
    assert found(client, headers, "jose OR resume") == []  # no word of the deleted record
    assert found(client, headers, "plain") == [
        db.session.scalar(select(Record.public_id).where(Record.run_id == reused.id))]
    assert_index_in_step(db)


def test_records_deleted_by_run_as_pruning_does_or_with_their_job_are_gone(
    client, api_key, db, corpus
):
    from webapp.jobs.service import delete_job

    headers = api_key("read")
    db.session.execute(delete(Record).where(Record.run_id == corpus["query"].id))
    db.session.commit()
    assert found(client, headers, "earnings OR example") == []
    delete_job(db.session.get(Job, corpus["alpha"].id))
    assert found(client, headers, "acme") == []
    assert found(client, headers, "owner") == [corpus["resume"]]
    assert_index_in_step(db)


def test_a_changed_title_is_searched_by_its_new_words(client, api_key, db, corpus):
    db.session.execute(update(Record).where(Record.public_id == corpus["hires"])
                       .values(title="Acme fires"))
    db.session.commit()
    assert found(client, api_key("read"), "hires") == []
    assert found(client, api_key("read"), "fires") == [corpus["hires"]]
    assert_index_in_step(db)


def test_records_stored_by_a_completed_run_are_searchable(client, api_key, db, project):
    from webapp.jobs import service as jobs
    from webapp.runs.lifecycle import claim_run, complete_run

    run = jobs.run_now(make_job(project))
    assert claim_run(run.id)
    record = {"source": "rss", "fingerprint": "f1", "url": "https://e.example/1",
              "title": "Ingested story", "text": "Bulk insert", "author": None,
              "published_at": T0, "metrics": {}, "raw": {}}
    assert complete_run(run.id, [record, {**record, "fingerprint": "f2", "title": "Other"}], [])
    assert len(found(client, api_key("read"), "bulk insert")) == 2
    assert len(found(client, api_key("read"), "ingested")) == 1


# --- highlighting ---------------------------------------------------------------------------

# Markup, the noncharacters the markers are made of, and control characters that other
# highlighters use as markers, all in the stored text.
HOSTILE = "<script>alert(1)</script> \ufdd0 x \ufdd1 \x02acme\x03 <mark>x</mark> Acme"


def test_highlights_are_escaped_text_with_only_the_engines_marks(client, db, project):
    store(db, project, None, [{"title": HOSTILE, "text": "An acme \ufdd0deal\ufdd1 for <b>you",
                               "author": "Mr \x02Acme\x03"}])
    body = client.get("/storage/records?q=acme").get_data(as_text=True)
    row = re.search(r'<tr id="record-rec_\w+">.*?</tr>', body, re.S)[0]
    assert "<script>" not in row and "<b>" not in row and "<mark>x</mark>" not in row
    # (PostgreSQL's excerpt of the text leaves tag-like words such as <b> out altogether.)
    assert "&lt;script&gt;" in row and "&lt;mark&gt;x&lt;/mark&gt;" in row
    marked = re.findall(r"<mark>(.*?)</mark>", row)
    # Title: acme and Acme; text: acme; author: Acme. Nothing else, whatever the text holds.
    assert [word.lower() for word in marked] == ["acme"] * 4
    tags = set(re.findall(r"</?([a-z]+)", row))
    assert tags <= {"tr", "td", "time", "code", "a", "div", "br", "small", "span", "mark"}


def test_marked_turns_only_its_own_markers_into_marks():
    opening, closing = search._markers()
    assert search._markers() != (opening, closing)  # fresh for every call
    excerpt = f"a<b {opening}x&y{closing} \ufdd0fake\ufdd1 {opening}z{closing}"
    assert search.marked(excerpt, opening, closing) == (
        "a&lt;b <mark>x&amp;y</mark> \ufdd0fake\ufdd1 <mark>z</mark>"
    )
    assert search.marked(None, opening, closing) is None


# --- odd input: 200 or 422, never 500 ------------------------------------------------------

ODD = [
    '"', '""', '"""', "-", "--", "- -", "OR", "OR OR", "AND", "-acme", '-"x y"', "!!!",
    "\x00", "a\x00b", "*", "acme*", "NEAR(a b)", "a:b", "title:acme", "^acme", "(", ")",
    "((a", "'", "''", "\\", "a' OR '1'='1", '"; DROP TABLE records; --', "🙂", "日本語", "é",
    "\u0301", "\ufdd0", "\ufffd", "x" * SEARCH_MAX, "x" * (SEARCH_MAX + 1),
    " ".join(["w"] * SEARCH_WORDS_MAX), " ".join(["w"] * (SEARCH_WORDS_MAX + 1)),
    "a OR " * 40, "-a " * 40, "a" + "\u0301" * 200, "ǅ ß ﬁ ½ ①", "\u202e\u200b\u00ad",
]


def assert_answered(response, where: str) -> None:
    """200, or 422 with a message about the search box (field q)."""
    assert response.status_code in (200, 422), f"{where}: {response.status_code}"
    if response.status_code == 422 and response.is_json:
        error = response.get_json()["error"]
        assert error["field"] == "q" and error["message"], where
    elif response.status_code == 422:
        slot = re.search(r'<p class="error" id="q-error"[^>]*>([^<]+)</p>',
                         response.get_data(as_text=True))
        assert slot and slot[1].strip(), f"{where}: no message next to the box"


@pytest.mark.parametrize("q", ODD, ids=[repr(q)[:40] for q in ODD])
def test_odd_searches_are_answered_never_failed(client, api_key, corpus, q):
    assert_answered(client.get("/v1/records", query_string={"q": q}, headers=api_key("read")),
                    "api")
    assert_answered(client.get("/storage/records", query_string={"q": q}), "page")
    assert client.get("/storage/records.csv", query_string={"q": q}).status_code in (200, 422)


SYNTAX = st.sampled_from(
    ["OR", "AND", "-", '"', "-\"", "acme", "café", "CAFE", "e-mail", "rocket", "(", ")", "*",
     ":", "\x00", "'", "\\", "🙂", "\u0301", "-acme", "NOT", "NEAR", "^", "日本"]
)


@SLOW
@given(st.lists(SYNTAX | st.text(max_size=6), max_size=12).map(" ".join))
def test_any_search_is_answered_200_or_422(client, api_key, corpus, q):
    assert_answered(client.get("/v1/records", query_string={"q": q}, headers=api_key("read")),
                    "api")
    assert_answered(client.get("/storage/records", query_string={"q": q}), "page")


# Words that both engines fold alike (ASCII and accented Latin letters), for the oracle below.
VOCABULARY = ["acme", "corp", "rocket", "launch", "big", "café", "cafe", "zoë", "jobs", "e",
              "mail", "deal", "x1"]
ORACLE_RECORDS = [
    {"title": "Acme rocket", "text": "big launch today", "author": "Zoë"},
    {"title": "Acme corp jobs", "text": "No rocket here", "author": None},
    {"title": "Café deal", "text": "e-mail the acme corp", "author": "Cafe owner"},
    {"title": "Big", "text": "launch x1 deal", "author": "Corp"},
    {"title": None, "text": "acme acme acme", "author": "jobs"},
    {"title": "ZOE rocket launch", "text": None, "author": "Acme"},
]


def fold(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", word.casefold())
                   if not unicodedata.combining(c))


def oracle(query: SearchQuery, record: dict) -> bool:
    """What the syntax promises, evaluated in Python on one record."""
    fields = [[fold(w) for w in split_words(record[f] or "")] for f in ("title", "text", "author")]

    def has(term: Term) -> bool:
        words = [fold(w) for w in term.words]
        return any(field[i:i + len(words)] == words
                   for field in fields for i in range(len(field)))

    return any(all(has(t) for t in terms) for terms in query.alternatives) and not any(
        has(t) for t in query.exclusions)


@SLOW
@given(st.lists(st.sampled_from(VOCABULARY + ["OR", "-", '"']), min_size=1, max_size=7)
       .map(lambda parts: " ".join(parts).replace("- ", "-").replace('" ', '"')))
def test_every_engine_finds_exactly_what_the_syntax_promises(client, api_key, db, project, q):
    if not db.session.scalar(select(Record.id).where(Record.title == "Acme rocket")):
        store(db, project, make_job(project), ORACLE_RECORDS)
    try:
        query = parse_search(q, SEARCH_WORDS_MAX)
    except SearchSyntaxError:
        return
    records = db.session.scalars(select(Record).order_by(Record.id.desc())).all()
    expected = [r.public_id for r in records if oracle(query, r.__dict__)]
    assert found(client, api_key("read"), q) == expected, q


# --- GET /v1/records -----------------------------------------------------------------------


def test_records_api_lists_every_record_newest_first_with_job_and_run(client, api_key, corpus):
    body = client.get("/v1/records", headers=api_key("read")).get_json()
    assert [item["id"] for item in body["data"]] == [
        corpus[n] for n in ("resume", "globex", "hires", "rocket")]
    assert body["next_cursor"] is None
    query_record = body["data"][1]
    assert query_record["run_id"] == corpus["query"].public_id
    assert query_record["job_id"] is None
    rocket = body["data"][3]
    assert set(rocket) == {"id", "source", "url", "title", "text", "author", "published_at",
                           "metrics", "is_new", "job_id", "run_id"}
    assert (rocket["job_id"], rocket["run_id"]) == (
        corpus["alpha"].public_id, corpus["first"].public_id)
    assert rocket["author"] == "Zoë Martin" and rocket["published_at"] == "2026-04-29T08:00:00Z"


def test_records_api_pages_by_cursor_with_and_without_a_search(client, api_key, db, project):
    job = make_job(project)
    for batch in range(3):
        store(db, project, job, [{"title": f"acme {batch} {i}" if i % 2 else f"other {i}"}
                                 for i in range(40)], T0 + timedelta(hours=batch))
    headers = api_key("read")
    for q, total in (("", 120), ("acme", 60)):
        everything = found(client, headers, q) if q else [
            item["id"] for item in client.get("/v1/records?limit=1000",
                                              headers=headers).get_json()["data"]]
        assert len(everything) == total
        pages, cursor = [], None
        while True:
            params = {"limit": 25, "q": q, **({"cursor": cursor} if cursor else {})}
            body = client.get("/v1/records", query_string=params, headers=headers).get_json()
            pages.append([item["id"] for item in body["data"]])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert [len(page) for page in pages][:-1] == [25] * (len(pages) - 1)
        assert [rid for page in pages for rid in page] == everything
    default = client.get("/v1/records", headers=headers).get_json()
    assert len(default["data"]) == 100 and default["next_cursor"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"since": "2026-05-02", "until": "2026-05-01"}, "until"),
        ({"since": "9999-12-31T23:59:59-23:59"}, "since"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"new": "yes"}, "new"),
        ({"q": "-acme"}, "q"),
        ({"q": "x" * (SEARCH_MAX + 1)}, "q"),
    ],
)
def test_records_api_refuses_bad_parameters_with_their_field(client, api_key, params, field):
    response = client.get("/v1/records", query_string=params, headers=api_key("read"))
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == field


def test_records_api_answers_404_for_a_job_or_run_it_does_not_have(
    client, api_key, db, corpus, other_project
):
    theirs = db.session.scalar(select(Run).where(Run.project_id == other_project.id))
    headers = api_key("read")
    for params in (
        {"job_id": theirs.job.public_id},
        {"run_id": theirs.public_id},
        {"job_id": "job_01HZZZZZZZZZZZZZZZZZZZZZZZ"},
        {"run_id": "qry_01HZZZZZZZZZZZZZZZZZZZZZZZ"},
        {"job_id": "job_\x00"},
        {"run_id": corpus["alpha"].public_id},  # a job id is no run id
    ):
        response = client.get("/v1/records", query_string=params, headers=headers)
        assert response.status_code == 404, params
        assert "secret" not in response.get_data(as_text=True)
    assert client.get("/v1/records?source=r%00ss", headers=headers).status_code == 200


def test_records_api_needs_a_read_key(client, api_key):
    assert client.get("/v1/records").status_code == 401
    assert client.get("/v1/records", headers=api_key("read")).status_code == 200


# --- the Storage page's search box ---------------------------------------------------------


def test_the_page_searches_highlights_and_keeps_its_filters(client, corpus):
    body = client.get(f"/storage/records?q=cafe&job={corpus['beta'].public_id}").get_data(
        as_text=True)
    box = re.search(r'<input id="filter-q"[^>]*>', body)[0]
    assert 'name="q"' in box and f'maxlength="{SEARCH_MAX}"' in box and 'value="cafe"' in box
    assert "aria-invalid" not in box
    assert "Resume of a <mark>CAFE</mark> owner: Big" in body
    assert "Globex" not in body
    assert "1 match on this page" in body


def test_a_search_that_cannot_run_is_explained_next_to_the_box(client, corpus):
    response = client.get("/storage/records?q=-acme")
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'<input id="filter-q"[^>]*aria-invalid="true"', body)
    assert '<p class="error" id="q-error">Add a word to find: “-acme” only leaves records out.' in (
        html.unescape(body))
    partial = client.get("/storage/records?q=-acme",
                         headers={"HX-Request": "true", "HX-Target": "record-results"})
    text_ = html.unescape(partial.get_data(as_text=True))
    assert partial.status_code == 422 and text_.lstrip().startswith('<section id="record-results"')
    assert '<p class="error" id="q-error" hx-swap-oob="true">Add a word to find' in text_
    # A good search clears the message beside the box, out of band too.
    cleared = client.get("/storage/records?q=acme",
                         headers={"HX-Request": "true", "HX-Target": "record-results"})
    assert '<p class="error" id="q-error" hx-swap-oob="true" hidden></p>' in cleared.get_data(
        as_text=True)


def test_an_export_of_a_search_has_exactly_its_records(client, corpus):
    rows = client.get("/storage/records.json?q=acme+-jobs").get_json()
    assert [row["id"] for row in rows] == [corpus["rocket"]]


# --- the migration -------------------------------------------------------------------------


def test_the_migration_indexes_records_stored_before_it_and_after(app, db, api_key, client):
    from flask_migrate import upgrade

    db.session.remove()  # the fixtures' reads hold locks that DROP TABLE would wait for
    db.drop_all()
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    upgrade(revision="1f2e3d4c5b6a")  # the revision before the search index
    with db.engine.begin() as connection:
        # Ids far above what the sequences hand out next, on PostgreSQL.
        for statement in (
            "INSERT INTO projects (id, public_id, name, created_at) "
            "VALUES (1000, 'prj_1', 'Migrated', '2026-01-01')",
            "INSERT INTO runs (id, public_id, project_id, trigger, scheduled_for, status, "
            "created_at, record_count, new_count, attempts) VALUES "
            "(1000, 'run_1', 1000, 'query', '2026-01-01', 'completed', '2026-01-01', 1, 1, 1)",
            "INSERT INTO records (id, public_id, run_id, project_id, position, source, "
            "fingerprint, title, text, author, metrics, raw, is_new) VALUES (1000, 'rec_old', "
            "1000, 1000, 0, 'rss', 'f', 'Stored before', 'the café index', 'Ann', '{}', '{}', "
            "true)",
        ):
            connection.exec_driver_sql(statement)
    upgrade()
    project = db.session.get(Project, 1000)
    store(db, project, None, [{"title": "Stored after", "text": "a cafe too"}])
    try:
        after = db.session.scalar(select(Record.public_id).where(Record.title == "Stored after"))
        assert set(found(client, api_key("read", target=project), "cafe")) == {after, "rec_old"}
        assert_index_in_step(db)
    finally:
        db.session.remove()
        db.drop_all()  # tests/test_migrations.py runs the downgrades, on an empty database
        with db.engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
