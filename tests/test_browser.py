"""The dashboard in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, LiveServer, require_chromium, save_screenshot
from feeds import rss_document
from playwright.sync_api import expect

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
def viewer_zone():
    """The browser's timezone; a test parametrizes it to view from elsewhere."""
    return "Europe/Berlin"


@pytest.fixture
def browser_page(live, viewer_zone):
    """A fresh browser page, not signed in."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id=viewer_zone)
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
    # The boosted POST redirected: the address bar shows the page it landed on, so a reload
    # stays there instead of asking for /setup again.
    expect(browser_page).to_have_url(re.compile(r"/jobs$"))
    expect(browser_page.locator("h1")).to_have_text("Jobs")
    expect(browser_page.locator(".session")).to_contain_text("ana@example.com")
    expect(browser_page.locator(".session")).to_contain_text("(owner)")
    browser_page.reload()
    expect(browser_page).to_have_url(re.compile(r"/jobs$"))
    expect(browser_page.locator(".flash")).to_have_count(0)  # a fresh GET, not the POST again
    expect(browser_page.locator("h1")).to_have_text("Jobs")
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
    expect(page.locator("#schedule-preview .error")).to_contain_text("minute field '61'")
    page.select_option("#schedule_kind", "daily_at")
    page.fill("#daily_at", "08:30")
    expect(page.locator("#schedule-preview")).to_contain_text("At 08:30")
    save_screenshot(page, "new-job")
    page.get_by_role("button", name="Create job").click()
    expect(page).to_have_url(re.compile(r"/jobs/job_\w+$"))
    expect(page.locator("h1")).to_have_text("Acme mentions")
    expect(page.locator("#job-status")).to_contain_text("At 08:30 (Europe/Berlin)")


def test_form_errors_show_next_to_their_fields_and_keep_the_input(live, page):
    page.goto(live.url + "/jobs/new")
    page.fill("#prompt", "acme")
    page.fill("#limit", "5000")
    page.get_by_role("button", name="Create job").click()
    expect(page.locator("#name-error")).to_have_text("Give the job a name.")
    expect(page.locator("#sources-error")).to_contain_text("Add at least one source")
    expect(page.locator("#limit-error")).to_contain_text("1 to 1000")
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
    expect(row.locator(".badge-running")).to_be_visible(timeout=15_000)
    expect(row.locator(".progress-compact")).to_contain_text("sources", timeout=15_000)
    save_screenshot(page, "jobs-running")
    expect(row.locator(".badge-active")).to_be_visible(timeout=30_000)
    expect(row).to_contain_text("12 (12 new)")
    assert page.evaluate("window.__noReload") is True  # the same page: no reload happened
    # The day's strip above the list was drawn again when the run ended.
    expect(page.locator("#timeline")).to_contain_text("12 records, 12 new", timeout=10_000)


def test_job_page_shows_the_timeline_and_run_history(live, page, project, feed_server, processes):
    from conftest import make_job

    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, name="Acme hourly", sources=[feed], date_range={"last": "7d"})
    processes.worker()
    page.goto(f"{live.url}/jobs/{job.public_id}")
    expect(page.locator(".timeline h2")).to_contain_text("Europe/Berlin")  # the viewer's zone
    page.locator("#job-status").get_by_role("button", name="Run now").click()
    expect(page.locator("#run-history .badge-completed")).to_be_visible(timeout=30_000)
    expect(page.locator(".timeline .badge-completed")).to_be_visible(timeout=10_000)
    expect(page.locator(".timeline")).to_contain_text("12 records, 12 new")
    upcoming = page.locator(".timeline-columns > div:nth-child(2)")
    berlin = ZoneInfo("Europe/Berlin")
    next_slot = job.next_run_at.astimezone(berlin)
    if next_slot.date() == datetime.now(berlin).date():
        expect(upcoming.locator("time").first).to_have_text(next_slot.strftime("%H:%M"))
    else:  # the last hour of the day: the next slot is tomorrow
        expect(upcoming).to_contain_text("No more runs before midnight")
    save_screenshot(page, "job")
    page.locator("#run-history tbody tr a").first.click()
    expect(page).to_have_url(re.compile(r"/runs/run_"))
    expect(page.locator("ol.records li")).to_have_count(12)
    expect(page.locator("ol.records")).not_to_contain_text("Globex")
    save_screenshot(page, "run")


def test_a_query_runs_once_and_is_saved_as_a_job(live, page, feed_server, processes):
    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    processes.worker()
    page.goto(live.url + "/query")
    page.fill("#prompt", "acme story 1")
    page.fill("#sources", feed)
    page.get_by_role("button", name="Run once").click()
    expect(page.get_by_role("link", name="Save as job")).to_be_visible(timeout=30_000)
    expect(page.locator("ol.records li")).to_have_count(1)  # terms match whole words: story 1 only
    save_screenshot(page, "query")
    page.get_by_role("link", name="Save as job").click()
    expect(page).to_have_url(re.compile(r"/jobs/new"))
    expect(page.locator("#prompt")).to_have_value("acme story 1")
    expect(page.locator("#sources")).to_have_value(feed)


def test_storage_browse_filter_and_export_csv(live, page, project, feed_server, processes):
    from conftest import make_job

    from webapp.jobs.service import run_now

    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, name="Acme store", sources=[feed], date_range={"last": "7d"},
                   prompt="acme OR globex")
    processes.worker()
    run_now(job)
    # The job's page follows the run live; its result file is listed once it completed.
    page.goto(f"{live.url}/jobs/{job.public_id}")
    expect(page.locator("#run-history .badge-completed")).to_be_visible(timeout=30_000)
    page.goto(live.url + "/storage")
    expect(page.get_by_role("link", name="Download JSON")).to_have_count(1)
    save_screenshot(page, "storage")
    page.get_by_role("link", name="Records").click()
    page.wait_for_url(re.compile(r"/storage/records"))
    expect(page.locator("#record-results")).to_contain_text("Globex earnings")
    page.fill("#filter-q", '"story 1" OR "story 12"')
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"q=%22story"))
    expect(page.locator("#record-results")).not_to_contain_text("Globex earnings")
    expect(page.locator("#record-results")).to_contain_text("Acme story 12")
    expect(page.locator("#record-results mark").first).to_be_visible()  # the matches, marked
    save_screenshot(page, "storage-records")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="CSV", exact=True).click()
    csv_text = Path(download_info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert sorted(row["title"] for row in rows) == ["Acme story 1", "Acme story 12"]


def test_analytics_shows_charts_with_their_numbers(live, page, project, feed_server, processes):
    from conftest import make_job

    from webapp.jobs.service import run_now

    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    job = make_job(project, name="Acme charts", sources=[feed], date_range={"last": "7d"})
    processes.worker()
    run_now(job)
    page.goto(f"{live.url}/jobs/{job.public_id}")
    expect(page.locator("#run-history .badge-completed")).to_be_visible(timeout=30_000)
    page.goto(live.url + "/analytics")
    charts = page.locator("figure img")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 5
    for index in range(charts.count()):  # every chart image really loads and draws
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()  # the images load lazily
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth > 0", arg=chart.element_handle(),
            timeout=5_000,
        )
    expect(page.locator("table").first).to_contain_text("12")
    save_screenshot(page, "analytics")


def test_settings_create_an_api_key_shown_once(live, page):
    page.goto(live.url + "/settings/api-keys")
    page.fill("input[name=name]", "CI key")
    page.select_option("select[name=scope]", "read")
    page.get_by_role("button", name=re.compile("Create")).click()
    revealed = page.locator("#revealed-value")
    expect(revealed).to_have_value(re.compile(r"^bsk_.{30,}"))
    secret = revealed.input_value()
    save_screenshot(page, "settings-api-keys")
    page.goto(live.url + "/settings/api-keys")
    expect(page.locator("#api-keys")).to_contain_text("CI key")
    assert secret not in page.content()  # shown once, never again


def test_settings_answered_in_place_keep_the_address_bar_on_the_section(live, page):
    page.goto(live.url + "/settings/members")
    page.get_by_role("button", name="Create invitation link").click()
    expect(page.locator("#revealed-value")).to_have_value(re.compile(r"/invite/"))
    # The form posted to /settings/invitations; the page shown is Members, and says so.
    expect(page).to_have_url(re.compile(r"/settings/members$"))
    page.reload()
    expect(page.locator("h2").first).to_have_text("Members")
    expect(page.locator("#revealed-value")).to_have_count(0)  # shown once


@pytest.mark.parametrize("viewer_zone", ["America/New_York"])
def test_a_viewer_elsewhere_sees_every_time_in_their_zone_with_the_jobs_on_hover(
    live, page, project, db, feed_server, processes, viewer_zone
):
    from sqlalchemy import select

    from webapp.models import Job, Run

    new_york, berlin = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin")
    feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
    processes.worker()
    page.goto(live.url + "/jobs/new")
    page.fill("#name", "Berlin morning")
    page.fill("#prompt", "acme")
    page.fill("#sources", feed)
    page.select_option("#date_range", "7d")
    page.select_option("#schedule_kind", "daily_at")
    page.fill("#daily_at", "08:00")
    page.fill("#timezone", "Europe/Berlin")
    page.get_by_role("button", name="Create job").click()
    expect(page).to_have_url(re.compile(r"/jobs/job_\w+$"))
    db.session.expire_all()
    job = db.session.scalars(select(Job).where(Job.name == "Berlin morning")).one()
    next_run = job.next_run_at.astimezone(new_york)
    assert job.next_run_at.astimezone(berlin).strftime("%H:%M") == "08:00"
    # The flash gives the next run in New York time (02:00 or 03:00), not UTC nor Berlin's.
    expect(page.locator(".flash")).to_contain_text(
        f"Next run {next_run:%Y-%m-%d %H:%M %Z}."
    )
    next_sync = page.locator("#job-status dd time").nth(0)
    expect(next_sync).to_have_attribute(
        "title", re.compile(rf"{next_run:%Y-%m-%d %H:%M %Z} · .* 08:00 CES?T \(Europe/Berlin\)")
    )
    expect(page.locator("#timeline h2")).to_contain_text("America/New_York")

    page.locator("#job-status").get_by_role("button", name="Run now").click()
    expect(page.locator("#run-history .badge-completed")).to_be_visible(timeout=30_000)
    db.session.expire_all()
    run = db.session.scalars(select(Run).where(Run.job_id == job.id)).one()
    started, finished = run.started_at.astimezone(new_york), run.finished_at.astimezone(new_york)
    cell = page.locator(f"#run-{run.public_id} td time")
    expect(cell).to_have_text(f"{started:%Y-%m-%d %H:%M %Z}")
    expect(cell).to_have_attribute(
        "title", f"{started:%Y-%m-%d %H:%M %Z} · {run.started_at.astimezone(berlin):%Y-%m-%d %H:%M %Z} (Europe/Berlin)"
    )
    done = page.locator(".timeline-columns > div").first.locator("li time")
    expect(done).to_have_text(f"{finished:%H:%M}", timeout=10_000)
    expect(done).to_have_attribute("title", re.compile(r"\(Europe/Berlin\)$"))

    page.goto(live.url + "/jobs")  # the project's day, in the same zone
    strip = page.locator("#timeline")
    expect(strip.locator("h2")).to_contain_text("America/New_York")
    expect(strip.locator(".timeline-columns > div").first).to_contain_text(
        f"{finished:%H:%M} Berlin morning"
    )


def test_a_status_poll_is_one_small_request_and_the_history_follows_only_changes(
    live, page, project, feed_server, processes
):
    from conftest import make_job

    # 4.5 s: within the fetch deadline of the tests (5 s), and long enough for a quiet poll.
    feed = feed_server.serve("/slow.xml", rss_document(ITEMS), delay=4.5)
    job = make_job(project, name="Slow feed", sources=[feed], date_range={"last": "7d"})
    processes.worker()
    page.goto(f"{live.url}/jobs/{job.public_id}")
    requests, announced, sizes = [], [], []

    def on_response(response):
        path = response.url.removeprefix(live.url).split("?")[0]
        requests.append(path)
        if path.endswith("/status"):
            sizes.append(int(response.headers["content-length"]))
            if response.headers.get("hx-trigger") == "runs-changed":
                announced.append(path)

    page.on("response", on_response)
    page.locator("#job-status").get_by_role("button", name="Run now").click()
    expect(page.locator("#run-progress")).to_contain_text("running for", timeout=15_000)
    expect(page.locator("#run-history .badge-completed")).to_be_visible(timeout=30_000)
    expect(page.locator("#job-status .badge-active")).to_be_visible()
    expect(page.locator("#run-progress")).to_have_count(0)  # progress stops with the run
    page.remove_listener("response", on_response)

    polls = [path for path in requests if path.endswith("/status")]
    history = [path for path in requests if path.endswith("/runs")]
    assert len(polls) >= 3, requests  # a run of about 5 s, polled every 2 s
    assert f"/jobs/{job.public_id}" not in requests  # never the whole page again
    # Each poll is one small request; the history is fetched once per change announced (the
    # run queued by the button, then started, then ended), not once per poll.
    assert max(sizes) < 4_000
    changes = len(announced) + 1  # the button's own answer announces the queued run
    assert len(history) == changes <= 4, requests
    assert len(polls) > len(announced)  # some polls found nothing new and cost one request


def test_an_owner_adds_a_channel_tests_it_and_a_jobs_new_records_reach_it(
    live, page, feed_server, processes
):
    """Settings → Channels, Send test, a job's Alerts section, then a run's new records
    arrive at the channel as one message; the job page offers its feed to subscribe to."""
    from channel_servers import JsonReceiver

    receiver = JsonReceiver().start()
    try:
        feed = feed_server.serve("/feed.xml", rss_document(ITEMS))
        processes.worker()
        processes.notifier()
        page.goto(live.url + "/settings/channels")
        page.fill("#name", "Team inbox")
        page.fill("#url", receiver.url() + "?token=s3cret")
        page.get_by_role("button", name="Add channel").click()
        card = page.locator(".settings-card", has_text="Team inbox")
        expect(card).to_contain_text(f"json://127.0.0.1:{receiver.port}/alerts")
        expect(card).not_to_contain_text("s3cret")  # shown masked
        card.get_by_role("button", name="Send a test message to Team inbox").click()
        expect(page.locator("main")).to_contain_text("A test message was sent to “Team inbox”.")
        assert [m["title"] for m in receiver.messages] == ["ByteStack test message"]
        expect(card).to_contain_text("Last message sent")
        expect(card).not_to_contain_text("Last message sent never")

        page.goto(live.url + "/jobs/new")
        page.fill("#name", "Acme alerts")
        page.fill("#prompt", "acme")
        page.fill("#sources", feed)
        page.get_by_label("Team inbox").check()
        page.get_by_label(re.compile("New records: the count")).check()
        page.get_by_role("button", name="Create job").click()
        expect(page).to_have_url(re.compile(r"/jobs/job_\w+$"))
        page.locator("#job-status").get_by_role("button", name="Run now").click()
        expect(page.locator("#run-history .badge-completed")).to_be_visible(timeout=30_000)
        # The notifier sends it after the run: wait for it as a reader would.
        deadline = datetime.now() + timedelta(seconds=30)
        while len(receiver.messages) < 2 and datetime.now() < deadline:
            page.wait_for_timeout(200)
        assert len(receiver.messages) >= 2, receiver.messages
        alert = receiver.messages[1]
        assert "Acme alerts" in alert["title"] and "12" in alert["title"] + alert["message"]
        assert "Acme story 1" in alert["message"]
        assert len(receiver.messages) == 2  # one message for the run, none twice

        feed_url = page.locator("#feed-url").input_value()
        assert "token=" in feed_url
        # The test app names itself "localhost" (SERVER_NAME); a deployment names its host.
        # A feed reader's request: no session, only the token.
        from urllib.request import urlopen

        with urlopen(live.url + feed_url.removeprefix("http://localhost"), timeout=10) as reply:
            assert reply.headers["Content-Type"].startswith("application/atom+xml")
            assert "Acme story 12" in reply.read().decode()
    finally:
        receiver.stop()
