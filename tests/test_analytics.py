"""Dashboard → Analytics: the numbers in each chart's table, scoping, ranges and the SVG images."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser

import pytest
import time_machine
from browser import CHROMIUM, CHROMIUM_ARGS, LiveServer, require_chromium
from conftest import make_job

from webapp.analytics.service import DateRange, RangeError, parse_range
from webapp.jobs.service import ensure_project
from webapp.models import Job, Project, Record, Run
from webapp.runs import rollups

DAY1 = datetime(2026, 5, 1, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
DAY3 = DAY1 + timedelta(days=2)
RANGE = {"range": "custom", "from": "2026-05-01", "to": "2026-05-03"}


# --- helpers ----------------------------------------------------------------------------------


def add_run(
    db,
    job: Job | None,
    at: datetime,
    *,
    project: Project | None = None,
    status: str = "completed",
    slot: datetime | None = None,
    seconds: float = 2.0,
    records: list[tuple[str, str | None, str | None, bool]] = (),
) -> Run:
    """Insert a run that started `at` (its slot by default) with its records.

    Each record is (source, domain, author, is_new).
    """
    project_id = job.project_id if job else project.id
    run = Run(
        project_id=project_id,
        job_id=job.id if job else None,
        trigger="schedule" if job else "query",
        scheduled_for=slot or at,
        status=status,
        started_at=None if status == "skipped" else at,
        finished_at=at if status == "skipped" else at + timedelta(seconds=seconds),
        record_count=len(records),
        new_count=sum(1 for r in records if r[3]),
    )
    db.session.add(run)
    db.session.flush()
    for position, (source, domain, author, is_new) in enumerate(records):
        db.session.add(
            Record(
                run_id=run.id,
                job_id=run.job_id,
                project_id=project_id,
                position=position,
                source=source,
                fingerprint=f"{run.id}-{position}",
                url=f"https://{domain}/{position}" if domain else None,
                domain=domain,
                author=author,
                is_new=is_new,
            )
        )
    db.session.flush()
    # Records written here skip the completion path, so the project's rollups are counted
    # again from them (as after a restore).
    rollups.rebuild(project_id)
    db.session.commit()
    return run


class Tables(HTMLParser):
    """Each chart section's table as rows of cell texts, keyed by the chart's name."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.captions: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self._chart: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_caption = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and attrs.get("id", "").startswith("chart-"):
            self._chart = attrs["id"].removeprefix("chart-")
            self.tables[self._chart] = []
        elif self._chart and tag == "img":
            self.images[self._chart] = attrs["src"]
        elif self._chart and tag == "caption":
            self._in_caption = True
            self.captions[self._chart] = ""
        elif self._chart and tag == "tr":
            self._row = []
        elif self._row is not None and tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._chart].append(self._row)
            self._row = None
        elif tag == "caption":
            self._in_caption = False
        elif tag == "section":
            self._chart = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_caption:
            self.captions[self._chart] += data

    def body(self, chart: str) -> list[list[str]]:
        """The rows after the header, without a Total row."""
        return [row for row in self.tables[chart][1:] if row[0] != "Total"]

    def total(self, chart: str) -> list[str]:
        return next(row for row in self.tables[chart] if row[0] == "Total")


def tables(client, url: str, **args) -> Tables:
    response = client.get(url, query_string=args)
    assert response.status_code == 200, response.text
    return Tables(response.text)


@pytest.fixture
def seeded(db, project):
    """Two jobs over three days: completed, failed and skipped runs with varied records."""
    alpha = make_job(project, name="Alpha")
    beta = make_job(project, name="Beta")
    add_run(
        db,
        alpha,
        DAY1 + timedelta(hours=9),
        seconds=1.5,
        records=[
            ("rss", "example.com", "ann", True),
            ("rss", "example.com", "bob", True),
            ("hackernews", "news.ycombinator.com", "ann", False),
        ],
    )
    # 23:59:59 and 00:00:00 fall on different UTC days.
    add_run(
        db,
        beta,
        DAY1 + timedelta(hours=23, minutes=59, seconds=59),
        seconds=0.25,
        records=[
            ("reddit", "reddit.com", "ann", True),
            ("reddit", "reddit.com", None, True),
        ],
    )
    # Its slot was before midnight but it started after: a run counts when it ran.
    add_run(
        db,
        alpha,
        DAY2,
        slot=DAY2 - timedelta(minutes=2),
        seconds=3,
        records=[
            ("rss", "example.com", "cy", True),
            ("rss", "blog.example.org", "cy", False),
            ("rss", None, "", False),
        ],
    )
    add_run(db, beta, DAY2 + timedelta(hours=6), status="failed", seconds=30)
    add_run(db, alpha, DAY2 + timedelta(hours=7), status="skipped")
    return alpha, beta


# --- the project page -------------------------------------------------------------------------


def test_project_page_tables_carry_every_aggregate(client, seeded):
    page = tables(client, "/analytics", **RANGE)

    assert page.body("records-per-run") == [
        ["2026-05-01 09:00", "Alpha", "3", "2"],
        ["2026-05-01 23:59", "Beta", "2", "2"],
        ["2026-05-02 00:00", "Alpha", "3", "1"],
    ]
    assert page.body("records-per-day") == [
        ["2026-05-01", "2", "5", "4"],
        ["2026-05-02", "3", "3", "1"],
        ["2026-05-03", "0", "0", "0"],
    ]
    assert page.total("records-per-day") == ["Total", "5", "8", "5"]
    assert page.body("sources") == [["rss", "5"], ["reddit", "2"], ["hackernews", "1"]]
    # ann counts once on day 1 though she appears in two runs of two jobs; None and "" never.
    assert page.body("authors") == [["2026-05-01", "2"], ["2026-05-02", "1"], ["2026-05-03", "0"]]
    assert page.body("domains") == [
        ["example.com", "3"],
        ["reddit.com", "2"],
        ["blog.example.org", "1"],
        ["news.ycombinator.com", "1"],
    ]
    assert page.body("durations") == [
        ["2026-05-01 09:00", "Alpha", "completed", "1.50"],
        ["2026-05-01 23:59", "Beta", "completed", "0.25"],
        ["2026-05-02 00:00", "Alpha", "completed", "3.00"],
        ["2026-05-02 06:00", "Beta", "failed", "30.00"],
    ]
    assert page.body("failures") == [["2026-05-02", "1", "1"]]
    assert page.total("failures") == ["Total", "1", "1"]


def test_summary_counts_runs_and_records_over_the_range(client, seeded):
    html = client.get("/analytics", query_string=RANGE).text
    summary = html[html.index('id="analytics-summary"') :]
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", summary[: summary.index("</dl>")]))
    assert facts == {
        "Runs": "5",
        "Completed": "3",
        "Failed": "1",
        "Skipped": "1",
        "Records": "8",
        "New records": "5",
    }


def test_top_domains_keep_the_ten_largest_in_order(client, db, project):
    job = make_job(project)
    records = [("rss", f"d{n:02}.example", "a", True) for n in range(12) for _ in range(n + 1)]
    add_run(db, job, DAY1, records=records)
    rows = tables(client, "/analytics", **RANGE).body("domains")
    assert [row[0] for row in rows] == [f"d{n:02}.example" for n in range(11, 1, -1)]
    assert rows[0][1] == "12" and rows[-1][1] == "3"


def test_per_run_charts_show_the_latest_runs_when_there_are_many(client, db, project):
    from webapp.analytics.service import RUN_CHART_LIMIT

    job = make_job(project)
    for n in range(RUN_CHART_LIMIT + 5):
        add_run(db, job, DAY1 + timedelta(minutes=10 * n))
    page = tables(client, "/analytics", **RANGE)
    rows = page.body("records-per-run")
    assert len(rows) == RUN_CHART_LIMIT
    last = DAY1 + timedelta(minutes=10 * (RUN_CHART_LIMIT + 4))
    assert rows[-1][0] == f"{last:%Y-%m-%d %H:%M}"
    assert (
        f"the latest {RUN_CHART_LIMIT} of {RUN_CHART_LIMIT + 5} runs"
        in page.captions["records-per-run"]
    )


def test_tables_are_accessible_with_captions_and_header_scopes(client, seeded):
    html = client.get("/analytics", query_string=RANGE).text
    page = Tables(html)
    assert (
        set(page.captions)
        == set(page.tables)
        == {
            "records-per-run",
            "records-per-day",
            "sources",
            "authors",
            "domains",
            "durations",
            "failures",
        }
    )
    assert html.count("<figure") == 7
    assert html.count('<th scope="col"') >= 7 * 2
    assert '<th scope="row"><a href="/runs/run_' in html
    assert all(src.startswith("/analytics/chart/") for src in page.images.values())


# --- ranges -----------------------------------------------------------------------------------


def test_preset_range_excludes_runs_before_it(client, db, project):
    job = make_job(project)
    today = datetime(2026, 6, 15, 12, tzinfo=UTC)
    add_run(db, job, today - timedelta(days=40), records=[("rss", "old.example", "x", True)])
    add_run(
        db, job, today - timedelta(days=29, hours=12), records=[("rss", "edge.example", "y", True)]
    )
    add_run(db, job, today - timedelta(days=2), records=[("rss", "new.example", "z", True)])
    with time_machine.travel(today, tick=False):
        last30 = tables(client, "/analytics", range="30")
        last90 = tables(client, "/analytics", range="90")
        default = tables(client, "/analytics")
    assert [r[0] for r in last30.body("domains")] == ["edge.example", "new.example"]
    assert last30.body("records-per-day")[0][0] == "2026-05-17"
    assert len(last30.body("records-per-day")) == 30
    assert [r[0] for r in last90.body("domains")] == ["edge.example", "new.example", "old.example"]
    assert default.body("records-per-day") == last30.body("records-per-day")
    with time_machine.travel(today, tick=False):
        assert [r[0] for r in tables(client, "/analytics", range="7").body("domains")] == [
            "new.example"
        ]


def test_custom_range_includes_both_end_days_whole(client, db, project):
    job = make_job(project)
    add_run(db, job, DAY1 - timedelta(seconds=1), records=[("rss", "before.example", "a", True)])
    add_run(db, job, DAY1, records=[("rss", "first.example", "a", True)])
    add_run(
        db,
        job,
        DAY3 + timedelta(hours=23, minutes=59),
        records=[("rss", "last.example", "a", True)],
    )
    add_run(db, job, DAY3 + timedelta(days=1), records=[("rss", "after.example", "a", True)])
    rows = tables(client, "/analytics", **RANGE).body("domains")
    assert sorted(r[0] for r in rows) == ["first.example", "last.example"]


def test_bad_range_shows_the_error_and_the_default_range(client, seeded):
    response = client.get(
        "/analytics", query_string={"range": "custom", "from": "2026-05-09", "to": "2026-05-01"}
    )
    assert response.status_code == 200
    assert "The From date must not be after the To date." in response.text
    assert 'role="alert"' in response.text
    assert "Showing the last 30 days instead." in response.text
    # The form keeps the person's choice and dates, so fixing one date is enough.
    assert '<option value="custom" selected>' in response.text
    assert 'value="2026-05-09"' in response.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"range": "14"}, "last 7, 30 or 90 days"),
        ({"range": "custom", "from": "2026-05-01"}, "both a From and a To"),
        ({"range": "custom", "from": "May 1", "to": "2026-05-02"}, "look like"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, "at most 366 days"),
    ],
)
def test_parse_range_refuses_unusable_ranges(args, message):
    with pytest.raises(RangeError, match=message):
        parse_range(args, date(2026, 5, 1))


def test_parse_range_reads_presets_and_dates():
    today = date(2026, 5, 10)
    assert parse_range({}, today) == DateRange(date(2026, 4, 11), today, 30)
    assert parse_range({"range": "7"}, today) == DateRange(date(2026, 5, 4), today, 7)
    assert parse_range({"from": "2026-01-01", "to": "2026-01-01"}, today) == DateRange(
        date(2026, 1, 1), date(2026, 1, 1)
    )


# --- scoping ----------------------------------------------------------------------------------


def test_job_page_counts_only_that_job(client, seeded):
    alpha, _ = seeded
    page = tables(client, f"/analytics/jobs/{alpha.public_id}", **RANGE)
    assert page.body("records-per-day") == [
        ["2026-05-01", "1", "3", "2"],
        ["2026-05-02", "2", "3", "1"],
        ["2026-05-03", "0", "0", "0"],
    ]
    assert page.body("sources") == [["rss", "5"], ["hackernews", "1"]]
    assert page.body("failures") == [["2026-05-02", "0", "1"]]
    # The job's own page has no Job column.
    assert page.tables["records-per-run"][0] == ["Run", "Records", "New records"]
    assert all(
        src.startswith(f"/analytics/jobs/{alpha.public_id}/chart/") for src in page.images.values()
    )


def test_job_selector_leads_to_the_job_page_keeping_the_range(client, seeded):
    alpha, _ = seeded
    response = client.get("/analytics", query_string={"job": alpha.public_id, "range": "7"})
    assert response.status_code == 302
    assert response.location.endswith(f"/analytics/jobs/{alpha.public_id}?range=7")


def test_other_projects_and_one_off_queries_are_never_counted(client, db, project, seeded):
    other = ensure_project("Other")
    stranger = make_job(other, name="Stranger")
    add_run(db, stranger, DAY1 + timedelta(hours=1), status="failed")
    add_run(
        db, stranger, DAY1 + timedelta(hours=2), records=[("rss", "example.com", "zed", True)] * 4
    )
    add_run(
        db,
        None,
        DAY1 + timedelta(hours=3),
        project=project,
        records=[("news", "query.example", "q", True)],
    )
    page = tables(client, "/analytics", **RANGE)
    assert page.body("records-per-day")[0] == ["2026-05-01", "2", "5", "4"]
    assert page.body("sources") == [["rss", "5"], ["reddit", "2"], ["hackernews", "1"]]
    assert page.body("domains")[0] == ["example.com", "3"]
    assert page.body("authors")[0] == ["2026-05-01", "2"]
    assert page.body("failures") == [["2026-05-02", "1", "1"]]
    assert "Stranger" not in client.get("/analytics", query_string=RANGE).text


def test_another_projects_job_is_not_found(client, db, seeded):
    stranger = make_job(ensure_project("Other"), name="Stranger")
    assert client.get(f"/analytics/jobs/{stranger.public_id}").status_code == 404
    assert client.get(f"/analytics/jobs/{stranger.public_id}/chart/sources.svg").status_code == 404
    assert client.get("/analytics/jobs/job_nope").status_code == 404


# --- the SVG images ---------------------------------------------------------------------------

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    "name",
    [
        "records-per-run",
        "records-per-day",
        "sources",
        "authors",
        "domains",
        "durations",
        "failures",
    ],
)
def test_chart_is_an_svg_image_with_styles_and_no_script(client, seeded, name):
    alpha, _ = seeded
    for url in (
        f"/analytics/chart/{name}.svg",
        f"/analytics/jobs/{alpha.public_id}/chart/{name}.svg",
    ):
        response = client.get(url, query_string=RANGE)
        assert response.status_code == 200
        assert response.mimetype == "image/svg+xml"
        assert b"<script" not in response.data.lower()
        root = ET.fromstring(response.data)
        assert root.tag == f"{SVG}svg"
        css = root.find(f".//{SVG}style").text.replace(" ", "")
        assert ".graph" in css and "prefers-color-scheme:dark" in css
        assert "script-src" not in response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_chart_draws_the_same_numbers_as_its_table(client, seeded):
    svg = client.get("/analytics/chart/sources.svg", query_string=RANGE).data.decode()
    # print_values writes each bar's value; the labels are the sources.
    for source, count in (("rss", "5"), ("reddit", "2"), ("hackernews", "1")):
        assert f">{source}<" in svg
        assert f">{count}<" in svg


def test_chart_urls_carry_a_digest_that_makes_them_cacheable(client, db, seeded):
    alpha, _ = seeded
    src = tables(client, "/analytics", **RANGE).images["sources"]
    cached = client.get(src)
    assert cached.headers["Cache-Control"] == "private, max-age=86400"
    add_run(db, alpha, DAY3, records=[("mastodon", "social.example", "dee", True)])
    assert client.get(src).headers["Cache-Control"] == "no-cache"
    assert tables(client, "/analytics", **RANGE).images["sources"] != src


def test_unknown_chart_or_bad_range_is_refused(client, seeded):
    assert client.get("/analytics/chart/nope.svg").status_code == 404
    assert client.get("/analytics/chart/sources.svg?range=12").status_code == 400


# --- empty states -----------------------------------------------------------------------------


def test_empty_range_explains_what_to_do(client, seeded):
    response = client.get("/analytics", query_string={"from": "2020-01-01", "to": "2020-01-31"})
    assert response.status_code == 200
    assert "No runs in this range yet — run a job or widen the dates" in response.text
    assert "<figure" not in response.text and "<img" not in response.text


def test_a_project_without_jobs_shows_the_empty_state(client, project):
    response = client.get("/analytics")
    assert response.status_code == 200
    assert "No runs in this range yet" in response.text


def test_charts_without_data_say_so_instead_of_drawing(client, db, project):
    job = make_job(project)
    add_run(db, job, DAY1)  # a completed run that found nothing
    page = client.get("/analytics", query_string=RANGE).text
    assert "No records in this range." in page
    assert "No failed or skipped runs in this range." in page
    assert 'id="chart-records-per-run"' in page and "/analytics/chart/records-per-run.svg" in page
    assert "/analytics/chart/sources.svg" not in page


# --- in a real browser, under the app's Content-Security-Policy ---------------------------------


@pytest.mark.browser
def test_charts_render_with_their_styles_under_the_csp_in_both_colour_schemes(app, client, seeded):
    """Every chart image loads, nothing breaks the CSP, and the SVG's own styles are drawn."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    server = LiveServer(app)
    server.start()
    query = "&".join(f"{k}={v}" for k, v in RANGE.items())
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                seen = {}
                for scheme in ("light", "dark"):
                    context = browser.new_context(color_scheme=scheme)
                    context.add_cookies(_signed_in_as(client, server.url))
                    page = context.new_page()
                    problems: list[str] = []
                    page.on(
                        "console",
                        lambda m, seen=problems: m.type == "error" and seen.append(m.text),
                    )
                    page.goto(f"{server.url}/analytics?{query}")
                    images = page.locator(".chart-image img")
                    assert images.count() == 7
                    for n in range(images.count()):
                        images.nth(n).scroll_into_view_if_needed()
                        assert (
                            images.nth(n).evaluate("i => i.decode().then(() => i.naturalWidth)") > 0
                        )
                    assert problems == []
                    seen[scheme] = _pixel_colors(page, "#chart-sources img")
                    # Opened on its own ("open image in new tab") the SVG is a document, and
                    # its own policy must still let its styles apply.
                    page.goto(server.url + page.locator("#chart-sources img").get_attribute("src"))
                    assert problems == []
                    context.close()
            finally:
                browser.close()
    finally:
        server.stop()
    # Unstyled, pygal draws black shapes: the series colour shows its stylesheet applied.
    teal = (14, 147, 132)
    assert teal in seen["light"] and teal in seen["dark"]
    # Axis labels follow the reader's scheme: light text on dark, never on light.
    assert _near(seen["dark"], (230, 233, 239)) and not _near(seen["light"], (230, 233, 239))


def _signed_in_as(client, url: str) -> list[dict]:
    """The test client's session cookie, so the browser is the same signed-in person."""
    name = client.application.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name)
    return [] if cookie is None else [{"name": name, "value": cookie.value, "url": url}]


def _pixel_colors(page, selector: str) -> set[tuple[int, int, int]]:
    """The colours an <img> paints where it is (nearly) opaque, read back through a canvas."""
    pixels = page.eval_on_selector(
        selector,
        """img => {
            const c = document.createElement('canvas');
            c.width = img.naturalWidth; c.height = img.naturalHeight;
            const g = c.getContext('2d');
            g.drawImage(img, 0, 0);
            return Array.from(g.getImageData(0, 0, c.width, c.height).data);
        }""",
    )
    return {tuple(pixels[i : i + 3]) for i in range(0, len(pixels), 4) if pixels[i + 3] >= 200}


def _near(colors: set[tuple[int, int, int]], target: tuple[int, int, int]) -> bool:
    return any(max(abs(a - b) for a, b in zip(color, target)) <= 12 for color in colors)
