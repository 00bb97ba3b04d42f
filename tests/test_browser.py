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
