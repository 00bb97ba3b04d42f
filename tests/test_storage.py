"""Dashboard → Storage and /v1/storage: result files, the records browser, records, exports."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_job
from helpers import stored_run
from sqlalchemy import event, select

from webapp.models import Job, Record, Run
from webapp.storage import service
from webapp.storage.service import RECORDS_PER_PAGE

T0 = datetime(2026, 4, 30, 8, 0, tzinfo=UTC)
KEY_TIME = "%Y-%m-%dT%H-%M-%SZ"


# --- helpers ---------------------------------------------------------------------------------


def add_run(db, project, job=None, records=(), finished_at=T0, status="completed") -> Run:
    """A run of `job` (a one-off query without one) with `records`, each a dict of overrides."""
    return stored_run(db, project, job, records, finished_at, status, record_defaults=_story)


def _story(run: Run, position: int) -> dict:
    return {
        "title": f"Story {run.id}-{position}",
        "text": "Acme did a thing.",
        "author": "Reporter",
        "published_at": T0 - timedelta(hours=1),
        "metrics": {},
        "raw": {},
    }


def key_of(run: Run) -> str:
    return f"{run.public_id}_{run.finished_at:{KEY_TIME}}.json"


def text(response) -> str:
    return response.get_data(as_text=True)


def record_ids(response) -> list[str]:
    """Public ids of the records a browser page shows, in page order."""
    return re.findall(r'<tr id="record-(rec_\w+)"', text(response))


def file_keys(response) -> list[str]:
    return re.findall(r'<a href="/storage/files/([^"/]+)"><code>', text(response))


def link(response, rel: str) -> str | None:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', text(response))
    return html.unescape(match.group(1)) if match else None


def titles(response) -> set[str]:
    """Titles of the records on a browser page (a searched one's without its <mark>s)."""
    cells = re.findall(r'href="/storage/records/rec_\w+">(.*?)</a>', text(response))
    return {html.unescape(re.sub(r"</?mark>", "", cell)) for cell in cells}


@pytest.fixture
def other_project(app):
    from webapp.jobs.service import ensure_project

    return ensure_project("Other")


@pytest.fixture
def catalogue(db, project):
    """Two jobs and a query, with records that differ in one property each."""
    alpha = make_job(project, name="Alpha watch")
    beta = make_job(project, name="Beta watch")
    first = add_run(
        db,
        project,
        alpha,
        [
            {"title": "Alpha rocket launch", "source": "rss", "is_new": True},
            {"title": "Alpha hires", "source": "hackernews", "is_new": False},
            {
                "title": "Old alpha news",
                "source": "rss",
                "published_at": datetime(2026, 3, 1, 12, tzinfo=UTC),
            },
        ],
        finished_at=T0,
    )
    second = add_run(
        db,
        project,
        beta,
        [
            {"title": "Beta ships", "source": "reddit", "text": "The BIG release is out"},
            {"title": "Beta 100% done", "source": "reddit", "is_new": False},
        ],
        finished_at=T0 + timedelta(hours=1),
    )
    query = add_run(
        db, project, None, [{"title": "Query finding", "source": "news"}], T0 + timedelta(hours=2)
    )
    return {"alpha": alpha, "beta": beta, "first": first, "second": second, "query": query}


# --- result files ----------------------------------------------------------------------------


def test_result_files_list_every_completed_run_and_query_newest_first(
    client, db, project, other_project, catalogue
):
    add_run(db, project, catalogue["alpha"], [], T0 + timedelta(hours=3), status="failed")
    add_run(db, other_project, make_job(other_project, name="Theirs"), [{}], T0)
    response = client.get("/storage")
    assert response.status_code == 200
    assert file_keys(response) == [
        key_of(catalogue["query"]),
        key_of(catalogue["second"]),
        key_of(catalogue["first"]),
    ]
    body = text(response)
    row = re.search(rf'<tr id="file-{catalogue["query"].public_id}">(.*?)</tr>', body, re.DOTALL)
    assert ">Query<" in row.group(1)
    row = re.search(rf'<tr id="file-{catalogue["first"].public_id}">(.*?)</tr>', body, re.DOTALL)
    assert "Alpha watch" in row.group(1)
    assert '<td class="num">3</td>' in row.group(1)
    assert "2026-04-30 08:00" in row.group(1)


def test_result_file_key_is_the_run_id_and_its_finish_time(db, project, catalogue):
    run = catalogue["first"]
    assert service.result_key(run) == f"{run.public_id}_2026-04-30T08-00-00Z.json"
    assert service.result_key(catalogue["query"]).startswith("qry_")


def test_result_files_filter_by_job(client, catalogue):
    response = client.get(f"/storage?job={catalogue['beta'].public_id}")
    assert file_keys(response) == [key_of(catalogue["second"])]


def test_result_files_of_an_unknown_job_say_so(client, catalogue):
    response = client.get("/storage?job=job_01HZZZZZZZZZZZZZZZZZZZZZZZ")
    assert response.status_code == 422
    assert "No job with this id" in text(response)
    assert file_keys(response) == []


def test_result_files_page_by_cursor_without_duplicates_or_gaps(client, db, project):
    job = make_job(project)
    runs = [add_run(db, project, job, [{}], T0 + timedelta(minutes=i)) for i in range(30)]
    first = client.get("/storage")
    assert len(file_keys(first)) == service.FILES_PER_PAGE
    assert link(first, "prev") is None
    second = client.get(link(first, "next"))
    assert link(second, "next") is None
    seen = file_keys(first) + file_keys(second)
    assert seen == [key_of(run) for run in reversed(runs)]
    back = client.get(link(second, "prev"))
    assert file_keys(back) == file_keys(first)


def test_storage_pages_say_what_to_do_when_empty(client):
    files = text(client.get("/storage"))
    assert "No result files yet" in files and 'href="/jobs/new"' in files
    records = text(client.get("/storage/records"))
    assert "No records stored yet" in records and 'href="/query"' in records
    filtered = text(client.get("/storage/records?q=nothing"))
    assert "No records match these filters" in filtered


def test_preview_shows_the_first_twenty_records_in_result_order(client, db, project):
    job = make_job(project, name="Big job")
    run = add_run(db, project, job, [{"title": f"Item {i:02d}"} for i in range(25)])
    response = client.get(f"/storage/files/{key_of(run)}")
    assert response.status_code == 200
    shown = re.findall(r">Item (\d\d)</a>", text(response))
    assert shown == [f"{i:02d}" for i in range(20)]
    assert "The first 20 of 25 records" in text(response)
    assert f'href="/storage/files/{key_of(run)}/download"' in text(response)


def test_download_json_streams_the_whole_result_file(client, db, project):
    job = make_job(project, name="Big job")
    run = add_run(db, project, job, [{"title": f"Item {i}"} for i in range(25)])
    response = client.get(f"/storage/files/{key_of(run)}/download")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{key_of(run)}"'
    body = json.loads(text(response))
    assert body["key"] == key_of(run)
    assert body["run_id"] == run.public_id and body["job_id"] == job.public_id
    assert body["created_at"] == "2026-04-30T08:00:00Z"
    assert body["record_count"] == 25
    assert [r["title"] for r in body["records"]] == [f"Item {i}" for i in range(25)]
    assert set(body["records"][0]) == {
        "id",
        "source",
        "url",
        "title",
        "text",
        "author",
        "published_at",
        "metrics",
        "is_new",
    }


def test_a_result_file_key_must_match_exactly_and_belong_to_the_project(
    client, db, project, other_project, catalogue
):
    theirs = add_run(db, other_project, None, [{}], T0)
    run = catalogue["first"]
    wrong_time = f"{run.public_id}_2026-04-30T09-00-00Z.json"
    for key in (key_of(theirs), wrong_time, "run_nothing.json", "../etc/passwd"):
        assert client.get(f"/storage/files/{key}").status_code == 404
        assert client.get(f"/storage/files/{key}/download").status_code == 404


def test_a_run_still_going_has_no_result_file(client, db, project, catalogue):
    running = add_run(db, project, catalogue["alpha"], [], T0 + timedelta(hours=5), "running")
    running.finished_at = None
    db.session.commit()
    assert running.public_id not in text(client.get("/storage"))
    key = f"{running.public_id}_{running.started_at:{KEY_TIME}}.json"
    assert client.get(f"/storage/files/{key}").status_code == 404


# --- records browser -------------------------------------------------------------------------


def test_browser_lists_every_record_of_the_project_newest_first(
    client, db, other_project, catalogue
):
    add_run(db, other_project, None, [{"title": "Someone else's"}], T0)
    response = client.get("/storage/records")
    assert response.status_code == 200
    assert titles(response) == {
        "Alpha rocket launch",
        "Alpha hires",
        "Old alpha news",
        "Beta ships",
        "Beta 100% done",
        "Query finding",
    }
    ids = record_ids(response)
    order = {rid: pk for rid, pk in zip(*_public_and_pk(db))}
    assert [order[i] for i in ids] == sorted((order[i] for i in ids), reverse=True)


def _public_and_pk(db):
    rows = db.session.execute(select(Record.public_id, Record.id)).all()
    return [r[0] for r in rows], [r[1] for r in rows]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("job={alpha}", {"Alpha rocket launch", "Alpha hires", "Old alpha news"}),
        ("run={second}", {"Beta ships", "Beta 100% done"}),
        ("run={query}", {"Query finding"}),
        ("source=reddit", {"Beta ships", "Beta 100% done"}),
        ("new=1", {"Alpha rocket launch", "Old alpha news", "Beta ships", "Query finding"}),
        ("q=ALPHA", {"Alpha rocket launch", "Alpha hires", "Old alpha news"}),
        ("q=big+release", {"Beta ships"}),  # matches the text, not the title
        ("q=100%25", {"Beta 100% done"}),  # % is a literal, not a wildcard
        ("q=a_p", set()),  # _ is a literal too
        (
            "from=2026-04-01",
            {"Alpha rocket launch", "Alpha hires", "Beta ships", "Beta 100% done", "Query finding"},
        ),
        ("to=2026-03-01", {"Old alpha news"}),  # the "to" day is included whole
        ("to=2026-02-28", set()),
        ("job={alpha}&source=rss&new=1", {"Alpha rocket launch", "Old alpha news"}),
    ],
)
def test_each_filter_narrows_the_records(client, catalogue, query, expected):
    url = "/storage/records?" + query.format(
        **{name: getattr(value, "public_id", "") for name, value in catalogue.items()}
    )
    response = client.get(url)
    assert response.status_code == 200
    assert titles(response) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("job=job_01HZZZZZZZZZZZZZZZZZZZZZZZ", "No job with this id"),
        ("run=run_01HZZZZZZZZZZZZZZZZZZZZZZZ", "No run or query with this id"),
        ("from=yesterday", "is not a date"),
        ("from=2026-05-02&to=2026-05-01", "must not be before"),
    ],
)
def test_bad_filters_are_explained_instead_of_failing(client, catalogue, query, message):
    response = client.get(f"/storage/records?{query}")
    assert response.status_code == 422
    assert message in text(response)
    assert record_ids(response) == []


def test_nul_bytes_and_malformed_ids_are_answered_not_crashed_on(client, api_key, catalogue):
    # PostgreSQL refuses text with NUL bytes: such input must never reach a query.
    assert client.get("/storage/records?q=al%00pha").status_code == 200
    assert client.get("/storage/records?source=r%00ss").status_code == 200
    assert client.get("/storage/records?job=job_%00").status_code == 422
    assert client.get("/storage/records?run=run_%00").status_code == 422
    assert client.get("/storage/records.csv?q=%00").status_code == 200
    assert client.get("/storage?job=job_%00").status_code == 422
    assert client.get("/storage/records/rec_%00").status_code == 404
    assert client.get("/storage/files/run_%00.json").status_code == 404
    headers = api_key("read")
    assert client.get("/v1/storage?job_id=job_%00", headers=headers).status_code == 404
    assert client.get("/v1/storage/run_%00.json", headers=headers).status_code == 404


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_dates_at_the_edges_of_the_calendar_do_not_fail(client, catalogue, day):
    assert client.get(f"/storage/records?from={day}").status_code in (200, 422)
    response = client.get(f"/storage/records?to={day}")
    assert response.status_code in (200, 422)
    assert "Something went wrong" not in text(response)


def test_filters_of_another_project_find_nothing(client, db, other_project, catalogue):
    theirs_job = make_job(other_project, name="Theirs")
    theirs_run = add_run(db, other_project, theirs_job, [{"title": "Secret"}])
    for query in (f"job={theirs_job.public_id}", f"run={theirs_run.public_id}"):
        response = client.get(f"/storage/records?{query}")
        assert response.status_code == 422
        assert "Secret" not in text(response)


def test_keyset_pages_cover_every_record_once_in_both_directions(client, db, project):
    job = make_job(project)
    for batch in range(3):
        add_run(
            db,
            project,
            job,
            [{"source": "rss"}, {"source": "reddit"}] * 40,
            T0 + timedelta(hours=batch),
        )
    expected = db.session.scalars(
        select(Record.public_id).where(Record.source == "rss").order_by(Record.id.desc())
    ).all()
    assert len(expected) == 120

    pages, response = [], client.get("/storage/records?source=rss")
    while True:
        pages.append(record_ids(response))
        older = link(response, "next")
        if older is None:
            break
        assert "source=rss" in older  # the filter travels with the cursor
        response = client.get(older)
    assert [len(p) for p in pages] == [50, 50, 20]
    assert [rid for page in pages for rid in page] == expected

    back = []
    while (newer := link(response, "prev")) is not None:
        response = client.get(newer)
        back.append(record_ids(response))
    assert back == [pages[1], pages[0]]


def test_a_page_is_read_by_keyset_without_offset_or_counting(client, db, project, catalogue):
    statements: list[tuple[str, object]] = []

    def remember(conn, cursor, statement, parameters, *args):
        statements.append((statement.lower(), parameters))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", remember)
    try:
        newest = db.session.scalar(select(Record.id).order_by(Record.id.desc()))
        response = client.get(f"/storage/records?before={newest}&source=rss")
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert titles(response) == {"Alpha rocket launch", "Old alpha news"}
    paged = [(s, params) for s, params in statements if "from records" in s]
    assert any("records.id < " in s and "limit" in s for s, _ in paged), statements
    # SQLite's dialect always writes "LIMIT ? OFFSET ?"; the offset it sends must stay 0.
    assert all(params[-1] == 0 for s, params in paged if "offset" in s)
    assert not any("count(" in s and "records" in s for s, _ in statements)


def test_a_cursor_past_the_end_shows_the_newest_page(client, catalogue):
    for cursor in ("1", "abc", "99999999999999999999999"):
        response = client.get(f"/storage/records?before={cursor}")
        assert response.status_code == 200
        assert len(record_ids(response)) == 6


def test_filter_form_is_htmx_and_works_without_js(db, client, project, catalogue):
    # More rss records than a page, so the page has an "Older" link to look at.
    add_run(db, project, None, [{"title": f"Feed item {i}", "source": "rss"}
                                for i in range(RECORDS_PER_PAGE)])
    body = text(client.get("/storage/records?source=rss"))
    form = re.search(r'<form id="record-filters"[^>]*>', body).group(0)
    assert 'method="get"' in form and 'action="/storage/records"' in form
    assert 'hx-get="/storage/records"' in form
    assert 'hx-target="#record-results"' in form and 'hx-push-url="true"' in form
    assert re.search(r'name="source"[^>]*value="rss"', body)
    # Links to a record are boosted page loads: the results must not make them swap into
    # themselves by an inherited hx-target.
    assert (
        re.search(r'<section id="record-results"[^>]*>', body)[0] == '<section id="record-results">'
    )
    older = re.search(r'<a rel="next"[^>]*>', body)
    assert older is not None and 'hx-target="#record-results"' in older[0]


def test_htmx_gets_only_the_results_and_a_history_restore_the_whole_page(client, catalogue):
    partial = client.get(
        "/storage/records?source=reddit",
        headers={"HX-Request": "true", "HX-Target": "record-results"},
    )
    body = text(partial)
    assert body.lstrip().startswith('<section id="record-results"')
    assert "<html" not in body and titles(partial) == {"Beta ships", "Beta 100% done"}
    assert "HX-Request" in partial.headers["Vary"]
    restore = client.get(
        "/storage/records?source=reddit",
        headers={
            "HX-Request": "true",
            "HX-Target": "record-results",
            "HX-History-Restore-Request": "true",
        },
    )
    assert "<html" in text(restore)


def test_a_record_page_shows_every_field_and_the_raw_json(client, db, project):
    job = make_job(project, name="Detail job")
    run = add_run(
        db,
        project,
        job,
        [
            {
                "title": "Acme IPO",
                "url": "https://www.example.com/ipo",
                "domain": "example.com",
                "author": "Jane Doe",
                "text": "Acme went public today.",
                "metrics": {"score": 42, "comments": 7},
                "raw": {"id": "abc", "nested": {"tags": ["ipo", "acme"]}},
            }
        ],
    )
    record = db.session.scalar(select(Record).where(Record.run_id == run.id))
    response = client.get(f"/storage/records/{record.public_id}")
    assert response.status_code == 200
    body = text(response)
    for fragment in (
        "Acme IPO",
        "Jane Doe",
        "example.com",
        "Acme went public today.",
        record.public_id,
        record.fingerprint,
        "Detail job",
        run.public_id,
        key_of(run),
        "2026-04-30 07:00",
        '<a href="https://www.example.com/ipo" rel="noopener noreferrer nofollow"',
        "<dt>score</dt><dd>42</dd>",
        "<dt>comments</dt><dd>7</dd>",
    ):
        assert fragment in body, fragment
    raw = html.unescape(
        re.search(r'<pre class="storage-raw"><code>(.*?)</code></pre>', body, re.DOTALL)[1]
    )
    assert json.loads(raw) == {"id": "abc", "nested": {"tags": ["ipo", "acme"]}}
    assert '\n  "nested": {' in raw  # pretty-printed


def test_a_record_of_another_project_is_404(client, db, other_project, catalogue):
    theirs = add_run(db, other_project, None, [{"title": "Secret"}])
    record = db.session.scalar(select(Record).where(Record.run_id == theirs.id))
    assert client.get(f"/storage/records/{record.public_id}").status_code == 404
    assert client.get("/storage/records/rec_unknown").status_code == 404
    assert "Secret" not in text(client.get("/storage/records"))


def test_storage_needs_a_signed_in_member_and_a_viewer_may_read_and_export(
    anonymous, persona, db, catalogue
):
    record = db.session.scalar(select(Record).order_by(Record.id))
    urls = [
        "/storage",
        "/storage/records",
        f"/storage/records/{record.public_id}",
        f"/storage/files/{key_of(catalogue['first'])}",
        f"/storage/files/{key_of(catalogue['first'])}/download",
        "/storage/records.csv",
    ]
    viewer = persona("viewer")  # an install with accounts: signed-out visitors go to sign-in
    for url in urls:
        response = anonymous.get(url)
        assert response.status_code in (302, 303), url
        assert "/login" in response.headers["Location"], url
    for url in urls:
        assert viewer.get(url).status_code == 200, url
    outsider = persona("outsider")
    assert outsider.get(f"/storage/records/{record.public_id}").status_code == 404
    assert outsider.get(f"/storage/files/{key_of(catalogue['first'])}").status_code == 404
    assert record.public_id not in text(outsider.get("/storage/records"))
    assert text(outsider.get("/storage/records.ndjson")) == ""


XSS = {
    "title": '<script>alert("title")</script>',
    "url": "javascript:alert(document.cookie)",
    "author": '<img src=x onerror=alert("author")>',
    "text": '"><svg onload=alert("text")>',
    "metrics": {"<b>bold</b>": "<i>x</i>"},
    "raw": {"html": "</code></pre><script>alert('raw')</script>"},
}


def test_whatever_a_source_returned_is_escaped_and_javascript_links_are_neutralised(
    client, db, project
):
    job = make_job(project, name="<em>Job</em>")
    run = add_run(db, project, job, [XSS])
    record = db.session.scalar(select(Record).where(Record.run_id == run.id))
    pages = [
        client.get("/storage"),
        client.get("/storage/records"),
        client.get(f"/storage/records?q={record.title[:8]}"),
        client.get(f"/storage/files/{key_of(run)}"),
        client.get(f"/storage/records/{record.public_id}"),
    ]
    for response in pages:
        body = text(response)
        assert response.status_code == 200
        assert "<script>alert" not in body
        assert "<img src=x" not in body and "<svg onload" not in body
        assert "<b>bold</b>" not in body and "<em>Job</em>" not in body
        assert 'href="javascript:' not in body.lower()
    detail = text(pages[-1])
    assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in detail
    assert "javascript:alert(document.cookie)" in detail  # shown as text, not as a link
    assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;" in detail


# --- exports ---------------------------------------------------------------------------------


def test_exports_stream_the_filtered_set_in_three_formats(client, catalogue):
    query = f"job={catalogue['alpha'].public_id}&source=rss"
    expected = ["Old alpha news", "Alpha rocket launch"]  # newest first

    as_json = client.get(f"/storage/records.json?{query}")
    assert as_json.status_code == 200 and as_json.is_streamed
    assert as_json.mimetype == "application/json"
    assert re.fullmatch(
        r'attachment; filename="records_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json"',
        as_json.headers["Content-Disposition"],
    )
    data = json.loads(text(as_json))
    assert [r["title"] for r in data] == expected
    assert data[0]["run_id"] == catalogue["first"].public_id
    assert data[0]["job_id"] == catalogue["alpha"].public_id

    as_ndjson = client.get(f"/storage/records.ndjson?{query}")
    assert as_ndjson.mimetype == "application/x-ndjson" and as_ndjson.is_streamed
    assert as_ndjson.headers["Content-Disposition"].endswith('.ndjson"')
    lines = text(as_ndjson).splitlines()
    assert [json.loads(line)["title"] for line in lines] == expected

    as_csv = client.get(f"/storage/records.csv?{query}")
    assert as_csv.mimetype == "text/csv" and as_csv.is_streamed
    assert as_csv.headers["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(text(as_csv))))
    assert list(rows[0]) == list(service.EXPORT_COLUMNS)
    assert [row["title"] for row in rows] == expected
    assert rows[0]["is_new"] == "true" and rows[0]["published_at"] == "2026-03-01T12:00:00Z"


def test_query_records_are_exported_with_their_query_id(client, catalogue):
    data = json.loads(text(client.get(f"/storage/records.json?run={catalogue['query'].public_id}")))
    assert data[0]["query_id"] == catalogue["query"].public_id
    assert "run_id" not in data[0] and data[0]["job_id"] is None


def test_an_export_of_nothing_is_valid_and_empty(client, catalogue):
    assert json.loads(text(client.get("/storage/records.json?q=zzz"))) == []
    assert text(client.get("/storage/records.ndjson?q=zzz")) == ""
    rows = list(csv.reader(io.StringIO(text(client.get("/storage/records.csv?q=zzz")))))
    assert rows == [list(service.EXPORT_COLUMNS)]


def test_export_with_a_bad_filter_is_refused(client, catalogue):
    response = client.get("/storage/records.csv?from=never")
    assert response.status_code == 422
    assert "is not a date" in text(response)


def test_csv_cells_that_a_spreadsheet_would_run_get_an_apostrophe(client, db, project):
    job = make_job(project)
    add_run(
        db,
        project,
        job,
        [
            {"title": '=HYPERLINK("https://evil.example","click")', "author": "+1"},
            {"title": "-2+3", "author": "@SUM(A1:A9)", "text": "plain - text = fine"},
        ],
    )
    rows = list(csv.DictReader(io.StringIO(text(client.get("/storage/records.csv")))))
    cells = {(row["title"], row["author"], row["text"]) for row in rows}
    assert cells == {
        ('\'=HYPERLINK("https://evil.example","click")', "'+1", "Acme did a thing."),
        ("'-2+3", "'@SUM(A1:A9)", "plain - text = fine"),
    }


def test_exports_are_produced_in_partitions_not_built_in_memory(client, db, project, monkeypatch):
    monkeypatch.setattr(service, "STREAM_BATCH", 10)
    job = make_job(project)
    add_run(db, project, job, [{} for _ in range(35)])
    response = client.get("/storage/records.ndjson", buffered=False)
    chunks = [chunk for chunk in response.response if chunk]
    response.close()
    assert len(chunks) == 4  # 10 + 10 + 10 + 5 rows
    assert sum(chunk.count(b"\n") for chunk in chunks) == 35


# --- API -------------------------------------------------------------------------------------


def test_api_lists_result_files_with_a_read_key(client, api_key, catalogue):
    response = client.get("/v1/storage", headers=api_key("read"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["next_cursor"] is None
    assert body["data"][0] == {
        "key": key_of(catalogue["query"]),
        "job_id": None,
        "query_id": catalogue["query"].public_id,
        "created_at": "2026-04-30T10:00:00Z",
        "record_count": 1,
    }
    assert body["data"][2] == {
        "key": key_of(catalogue["first"]),
        "job_id": catalogue["alpha"].public_id,
        "run_id": catalogue["first"].public_id,
        "created_at": "2026-04-30T08:00:00Z",
        "record_count": 3,
    }
    assert [f["key"] for f in body["data"]] == [
        key_of(catalogue[name]) for name in ("query", "second", "first")
    ]


def test_api_pages_result_files_with_a_cursor(client, db, project, api_key):
    job = make_job(project)
    runs = [add_run(db, project, job, [{}], T0 + timedelta(minutes=i)) for i in range(5)]
    headers, keys, cursor = api_key("read"), [], None
    for _ in range(5):
        url = "/v1/storage?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=headers).get_json()
        keys += [f["key"] for f in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert keys == [key_of(run) for run in reversed(runs)]


def test_api_filters_result_files_by_job(client, api_key, catalogue):
    body = client.get(
        f"/v1/storage?job_id={catalogue['beta'].public_id}", headers=api_key("read")
    ).get_json()
    assert [f["key"] for f in body["data"]] == [key_of(catalogue["second"])]


def test_api_job_filter_of_another_project_or_unknown_is_404(
    client, db, api_key, other_project, catalogue
):
    theirs = make_job(other_project, name="Theirs")
    for job_id in (theirs.public_id, "job_unknown"):
        response = client.get(f"/v1/storage?job_id={job_id}", headers=api_key("read"))
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_api_rejects_a_forged_cursor_and_a_bad_limit(client, api_key, catalogue):
    assert client.get("/v1/storage?cursor=%%%", headers=api_key("read")).status_code == 400
    response = client.get("/v1/storage?limit=0", headers=api_key("read"))
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "limit"


def test_api_returns_a_result_file_in_three_formats(client, api_key, catalogue):
    run, headers = catalogue["first"], api_key("read")
    as_json = client.get(f"/v1/storage/{key_of(run)}", headers=headers)
    assert as_json.status_code == 200 and as_json.is_streamed
    body = as_json.get_json()
    assert body["key"] == key_of(run) and body["run_id"] == run.public_id
    assert body["job_id"] == catalogue["alpha"].public_id and body["record_count"] == 3
    assert body["status"] == "completed" and body["finished_at"] == "2026-04-30T08:00:00Z"
    assert [r["title"] for r in body["records"]] == [
        "Alpha rocket launch",
        "Alpha hires",
        "Old alpha news",
    ]

    as_csv = client.get(f"/v1/storage/{key_of(run)}?format=csv", headers=headers)
    assert as_csv.mimetype == "text/csv"
    assert as_csv.headers["Content-Disposition"].endswith(
        f'{key_of(run).removesuffix(".json")}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(text(as_csv))))
    assert [r["title"] for r in rows] == ["Alpha rocket launch", "Alpha hires", "Old alpha news"]

    as_ndjson = client.get(f"/v1/storage/{key_of(run)}?format=ndjson", headers=headers)
    assert as_ndjson.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in text(as_ndjson).splitlines()]
    assert [r["source"] for r in lines] == ["rss", "hackernews", "rss"]
    assert {r["run_id"] for r in lines} == {run.public_id}


def test_api_result_file_of_a_query_names_its_query(client, api_key, catalogue):
    body = client.get(
        f"/v1/storage/{key_of(catalogue['query'])}", headers=api_key("read")
    ).get_json()
    assert body["query_id"] == catalogue["query"].public_id and "run_id" not in body
    assert body["prompt"] == "acme"


def test_api_unknown_or_other_project_key_is_404_in_the_error_shape(
    client, db, api_key, other_project, catalogue
):
    theirs = add_run(db, other_project, None, [{}], T0)
    for key in (
        key_of(theirs),
        "run_01HZZZZZZZZZZZZZZZZZZZZZZZ_2026-04-30T08-00-00Z.json",
        "nonsense",
    ):
        response = client.get(f"/v1/storage/{key}", headers=api_key("read"))
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_api_rejects_an_unknown_format(client, api_key, catalogue):
    response = client.get(
        f"/v1/storage/{key_of(catalogue['first'])}?format=xml", headers=api_key("read")
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "format"


def test_api_storage_needs_a_key(client, catalogue):
    for url in ("/v1/storage", f"/v1/storage/{key_of(catalogue['first'])}"):
        response = client.get(url)
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"


# --- a real run ------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_completed_run_of_a_worker_is_a_result_file(
    client, db, project, api_key, feed_server, processes
):
    from feeds import rss_document, wait_until

    from webapp.jobs.service import run_now

    url = feed_server.serve(
        "/feed.xml",
        rss_document(
            [
                {"title": "Acme launches", "link": "https://news.example.com/a/1"},
                {"title": "Acme hires", "link": "https://news.example.com/a/2"},
                {"title": "Unrelated", "link": "https://news.example.com/a/3"},
            ]
        ),
    )
    job = make_job(project, sources=[url], prompt="acme", date_range={"last": "7d"})
    processes.worker()
    run_now(job)

    def completed():
        db.session.expire_all()
        return db.session.scalar(select(Run).where(Run.job_id == job.id, Run.status == "completed"))

    run = wait_until(completed, 30, message="a completed run")
    key = service.result_key(run)
    listed = client.get("/v1/storage", headers=api_key("read")).get_json()["data"]
    assert [f["key"] for f in listed] == [key]
    assert listed[0]["record_count"] == 2
    body = client.get(f"/v1/storage/{key}", headers=api_key("read")).get_json()
    assert sorted(r["title"] for r in body["records"]) == ["Acme hires", "Acme launches"]
    assert key in text(client.get("/storage"))
    page = client.get(f"/storage/records?run={run.public_id}")
    assert titles(page) == {"Acme launches", "Acme hires"}
    assert db.session.get(Job, job.id).state == "active"
