"""The dashboard in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from playwright.sync_api import expect

from browser import CHROMIUM, CHROMIUM_ARGS, LiveServer, require_chromium, save_screenshot
from feeds import rss_document

pytestmark = pytest.mark.browser

ITEMS = [
    {"title": f"Acme story {n}", "link": f"https://news.example.com/acme/{n}",
     "age": timedelta(minutes=n), "author": f"Writer {n % 3}"}
    for n in range(1, 13)
] + [{"title": "Globex earnings", "link": "https://news.example.com/globex/1"}]


@pytest.fixture
def live(app):
    require_chromium()
    app.config["WTF_CSRF_ENABLED"] = True  # the browser sends real tokens
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser_page(live):
    """A fresh browser page, not signed in."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: msg.type == "error" and not _expected(msg.text) and errors.append(msg.text))
        yield page
        browser.close()
        assert errors == [], f"the page logged errors: {errors}"


@pytest.fixture
def page(live, browser_page, owner):
    """A browser page signed in as the project's owner, through the sign-in form."""
    from conftest import PASSWORD

    browser_page.goto(live.url + "/login")
    browser_page.fill("#email", owner.email)
    browser_page.fill("#password", PASSWORD)
    browser_page.get_by_role("button", name="Sign in").click()
    browser_page.wait_for_url(re.compile(r"/jobs$"))
    return browser_page


def test_a_fresh_install_asks_for_the_owner_account(live, browser_page, db):
    browser_page.goto(live.url + "/jobs")
    browser_page.wait_for_url(re.compile(r"/setup$"))
    save_screenshot(browser_page, "setup")
    browser_page.fill("#email", "ana@example.com")
    browser_page.fill("#password", "short")
    browser_page.get_by_role("button", name="Create owner account").click()
    expect(browser_page.locator("#password-error")).to_contain_text("at least 10 characters")
    browser_page.fill("#password", "a long enough password")
    browser_page.get_by_role("button", name="Create owner account").click()
    browser_page.wait_for_url(re.compile(r"/jobs$"))
    expect(browser_page.locator(".session")).to_contain_text("ana@example.com")
    expect(browser_page.locator(".session")).to_contain_text("(owner)")
    browser_page.goto(live.url + "/setup")
    browser_page.wait_for_url(re.compile(r"/jobs$"))  # set-up is offered only once


def _expected(message: str) -> bool:
    # A form with errors answers 422 by design; the browser logs every 4xx.
    return "status of 422" in message


def test_create_a_job_in_the_form_with_a_live_schedule_preview(live, page, feed_server):
    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    page.goto(live.url + "/jobs")
    save_screenshot(page, "jobs-empty")
    page.get_by_role("link", name="New Job").click()
    page.fill("#name", "Acme mentions")
    page.fill("#prompt", '"acme" -globex last 7 days')
    expect(page.locator("#prompt-plan")).to_have_text(
        "Searching for: acme, excluding globex, in the last 7 days"
    )
    page.fill("#sources", feed)
    page.select_option("#schedule_kind", "cron")
    page.fill("#cron", "*/15 9-17 * * 1-5")
    page.fill("#timezone", "Europe/Berlin")
    expect(page.locator("#schedule-preview")).to_contain_text("Every 15 minutes")
    expect(page.locator("#schedule-preview li")).to_have_count(5)
    page.fill("#cron", "61 * * * *")
    page.wait_for_selector("#schedule-preview .error")
    assert "minute field '61'" in page.inner_text("#schedule-preview")
    page.select_option("#schedule_kind", "daily_at")
    page.fill("#daily_at", "08:30")
    expect(page.locator("#schedule-preview")).to_contain_text("At 08:30")
    save_screenshot(page, "new-job")
    page.get_by_role("button", name="Create job").click()
    page.wait_for_url(re.compile(r"/jobs/job_"))
    assert page.locator("h1").inner_text() == "Acme mentions"
    assert "At 08:30 (Europe/Berlin)" in page.inner_text("#job-status")


def test_form_errors_show_next_to_their_fields_and_keep_the_input(live, page):
    page.goto(live.url + "/jobs/new")
    page.fill("#prompt", "acme")
    page.fill("#limit", "5000")
    page.get_by_role("button", name="Create job").click()
    page.wait_for_selector("#name-error")
    assert page.inner_text("#name-error") == "Give the job a name."
    assert "Add at least one source" in page.inner_text("#sources-error")
    assert "1 to 1000" in page.inner_text("#limit-error")
    assert page.input_value("#prompt") == "acme"
    assert page.input_value("#limit") == "5000"


def test_run_now_turns_the_row_running_then_active_without_a_reload(
    live, page, project, feed_server, processes
):
    from conftest import make_job

    feed = feed_server.serve("/slow.xml", rss_document(ITEMS), delay=3)
    job = make_job(project, name="Slow feed", sources=[feed], date_range={"last": "7d"})
    processes.worker()
    page.goto(live.url + "/jobs")
    row = page.locator(f"#job-{job.public_id}")
    page.evaluate("window.__noReload = true")
    row.get_by_role("button", name="Run now").click()
    row.locator(".badge-running").wait_for(timeout=15_000)
    save_screenshot(page, "jobs-running")
    row.locator(".badge-active").wait_for(timeout=30_000)
    assert page.evaluate("window.__noReload") is True  # the same page: no reload happened
    assert "12 (12 new)" in row.inner_text()


def test_job_page_shows_the_timeline_and_run_history(live, page, project, feed_server, processes):
    from conftest import make_job

    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, name="Acme hourly", sources=[feed], date_range={"last": "7d"})
    processes.worker()
    page.goto(f"{live.url}/jobs/{job.public_id}")
    expect(page.locator(".timeline h2")).to_contain_text("Europe/Berlin")  # the viewer's zone
    page.locator("#job-status").get_by_role("button", name="Run now").click()
    page.locator("#run-history .badge-completed").wait_for(timeout=30_000)
    page.locator(".timeline .badge-completed").wait_for(timeout=10_000)
    assert "12 records, 12 new" in page.inner_text(".timeline")
    upcoming = page.inner_text(".timeline-columns > div:nth-child(2)")
    assert re.search(r"\d\d:00", upcoming) or "No more runs before midnight" in upcoming
    save_screenshot(page, "job")
    page.locator("#run-history tbody tr a").first.click()
    page.wait_for_url(re.compile(r"/runs/run_"))
    assert page.locator("ol.records li").count() == 12
    assert "Globex" not in page.inner_text("ol.records")
    save_screenshot(page, "run")


def test_a_query_runs_once_and_is_saved_as_a_job(live, page, feed_server, processes):
    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    processes.worker()
    page.goto(live.url + "/query")
    page.fill("#prompt", "acme story 1")
    page.fill("#sources", feed)
    page.get_by_role("button", name="Run once").click()
    page.get_by_role("link", name="Save as job").wait_for(timeout=30_000)
    assert page.locator("ol.records li").count() >= 1
    save_screenshot(page, "query")
    page.get_by_role("link", name="Save as job").click()
    page.wait_for_url(re.compile(r"/jobs/new"))
    assert page.input_value("#prompt") == "acme story 1"
    assert page.input_value("#sources") == feed


def test_storage_browse_filter_and_export_csv(live, page, project, feed_server, processes):
    from conftest import make_job
    from webapp.jobs.service import run_now

    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, name="Acme store", sources=[feed], date_range={"last": "7d"},
                   prompt="acme OR globex")
    processes.worker()
    run_now(job)
    download = page.get_by_role("link", name="Download JSON").first
    for _ in range(60):  # the result file is listed once its run has completed
        page.goto(live.url + "/storage")
        if download.count():
            break
        page.wait_for_timeout(500)
    expect(download).to_be_visible()
    save_screenshot(page, "storage")
    page.get_by_role("link", name="Records").click()
    page.wait_for_url(re.compile(r"/storage/records"))
    expect(page.locator("#record-results")).to_contain_text("Globex earnings")
    page.fill("#filter-q", "story 1")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"q=story"))
    expect(page.locator("#record-results")).not_to_contain_text("Globex earnings")
    expect(page.locator("#record-results")).to_contain_text("Acme story 1")
    save_screenshot(page, "storage-records")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="CSV", exact=True).click()
    csv_text = open(download_info.value.path(), encoding="utf-8").read()
    rows = csv_text.strip().splitlines()
    assert rows[0].startswith("id,") or "title" in rows[0]
    assert any("Acme story 1" in row for row in rows[1:])  # 1, 10, 11, 12 match
    assert not any("Globex" in row for row in rows)


def test_analytics_shows_charts_with_their_numbers(live, page, project, feed_server, processes):
    from conftest import make_job
    from webapp.jobs.service import run_now

    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, name="Acme charts", sources=[feed], date_range={"last": "7d"})
    processes.worker()
    run_now(job)
    page.goto(f"{live.url}/jobs/{job.public_id}")
    page.locator("#run-history .badge-completed").wait_for(timeout=30_000)
    page.goto(live.url + "/analytics")
    charts = page.locator("figure img")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 5
    for index in range(charts.count()):  # every chart image really loads and draws
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()  # the images load lazily
        loaded = "(img) => img.complete && img.naturalWidth > 0"
        for _ in range(50):
            if chart.evaluate(loaded):
                break
            page.wait_for_timeout(100)
        assert chart.evaluate(loaded), f"chart {index} did not load"
    expect(page.locator("table").first).to_contain_text("12")
    save_screenshot(page, "analytics")


def test_settings_create_an_api_key_shown_once(live, page):
    page.goto(live.url + "/settings/api-keys")
    page.fill("input[name=name]", "CI key")
    page.select_option("select[name=scope]", "read")
    page.get_by_role("button", name=re.compile("Create")).click()
    revealed = page.locator("#revealed-value")
    expect(revealed).to_be_visible()
    secret = revealed.input_value()
    assert secret.startswith("bsk_") and len(secret) > 30
    save_screenshot(page, "settings-api-keys")
    page.goto(live.url + "/settings/api-keys")
    assert secret not in page.content()  # shown once, never again
    expect(page.locator("body")).to_contain_text("CI key")
