"""A job's Atom feed: its newest new records, for feed readers.

Readers that cannot send an API key use the job's private feed URL, which carries a token of
its own: made on first need, stored encrypted (the job's page shows it), and replaced by
Rotate, after which the old URL answers 404 like any job the caller may not see.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from feedgen.feed import FeedGenerator
from sqlalchemy import select, update
from sqlalchemy.orm import defer

from ..crypto import DecryptionError, decrypt, encrypt
from ..errors import NotFoundError
from ..extensions import db
from ..models import Job, Record, Run

FEED_ENTRIES = 50
SUMMARY_MAX = 2000
TITLE_MAX = 200
GENERATOR = "ByteStack Jobs"
# XML 1.0 has no way to write these, escaped or not (lxml refuses the whole document).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value: str | None) -> str:
    return _NOT_XML.sub("", value or "").strip()


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# --- the private token ------------------------------------------------------------------------


def _store_token(job: Job, token: str, only_if_none: bool) -> None:
    where = [Job.id == job.id]
    if only_if_none:
        where.append(Job.feed_token_encrypted.is_(None))
    # The token is not a change a person made to the job: updated_at stays as it was.
    db.session.execute(
        update(Job)
        .where(*where)
        .values(feed_token_encrypted=encrypt(token), updated_at=Job.updated_at)
    )
    db.session.commit()
    db.session.refresh(job)


def give_token(job: Job) -> None:
    """A new job's feed token, set before the job is first saved, so that viewing its page
    writes nothing."""
    job.feed_token_encrypted = encrypt(secrets.token_urlsafe(32))


def feed_token(job: Job) -> str:
    """The job's private feed token (made here for jobs saved before feeds existed)."""
    if job.feed_token_encrypted is not None:
        try:
            return decrypt(job.feed_token_encrypted)
        except DecryptionError:
            # Saved under another SECRET_KEY: no URL could match it now, so it starts again.
            return rotate_feed_token(job)
    # Two first views at once make one token: the second keeps the one the first stored.
    _store_token(job, secrets.token_urlsafe(32), only_if_none=True)
    return decrypt(job.feed_token_encrypted)


def rotate_feed_token(job: Job) -> str:
    """A new private feed token; the old one stops working at once."""
    token = secrets.token_urlsafe(32)
    _store_token(job, token, only_if_none=False)
    return token


def job_for_feed_token(public_id: str, token: str) -> Job:
    """The job whose private feed token this is; NotFoundError (as for any job the caller may
    not see) for a wrong token, a job without one, or no such job."""
    job = None
    if "\x00" not in public_id:
        job = db.session.scalar(select(Job).where(Job.public_id == public_id))
    stored = None
    if job is not None and job.feed_token_encrypted is not None:
        try:
            stored = decrypt(job.feed_token_encrypted)
        except DecryptionError:
            stored = None
    given = token.encode("utf-8", "replace")
    if stored is None or not hmac.compare_digest(stored.encode("utf-8"), given):
        raise NotFoundError("No job with this id in this project.")
    return job


# --- the feed ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedLinks:
    """Where the feed lives (its private URL), the job's page, a record's page in the dashboard
    (from its public id), and the tag: URI authority (the server's host name) that makes the
    feed's and its entries' ids."""

    self_url: str
    page_url: str
    record_page: Callable[[str], str]
    authority: str


def newest_new_records(job: Job, limit: int = FEED_ENTRIES) -> list[tuple[Record, object]]:
    """The job's newest records that were new when found, each with its run's finish."""
    return db.session.execute(
        select(Record, Run.finished_at)
        .join(Run, Record.run_id == Run.id)
        .where(
            Record.project_id == job.project_id,
            Record.job_id == job.id,
            Record.is_new.is_(True),
        )
        .options(defer(Record.raw))
        .order_by(Record.id.desc())
        .limit(limit)
    ).all()


def _tag(links: FeedLinks, job: Job, specific: str) -> str:
    # RFC 4151: tag:<authority>,<a date the authority was ours>:<anything unique under it>.
    return f"tag:{links.authority},{job.created_at:%Y-%m-%d}:{specific}"


def _entry_title(record: Record) -> str:
    title = _xml_text(record.title) or _xml_text(record.text) or _xml_text(record.url)
    return _shortened(" ".join(title.split()), TITLE_MAX) or "Untitled record"


def _web_link(url: str | None) -> str | None:
    """The record's link, if it is one a reader may open (http or https only)."""
    url = _xml_text(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def build_feed(job: Job, links: FeedLinks) -> bytes:
    """The job's Atom 1.0 document: its newest new records, at most FEED_ENTRIES."""
    feed = FeedGenerator()
    feed.id(_tag(links, job, job.public_id))
    feed.title(_xml_text(f"{job.name} · new records"))
    feed.subtitle(
        _shortened(_xml_text(f"New records of the job “{job.name}”: {job.prompt}"), SUMMARY_MAX)
    )
    feed.link(href=links.self_url, rel="self", type="application/atom+xml")
    feed.link(href=links.page_url, rel="alternate", type="text/html")
    feed.author({"name": GENERATOR})
    feed.generator(GENERATOR)
    newest = job.created_at
    for record, finished_at in newest_new_records(job):
        moment = record.published_at or finished_at or job.created_at
        newest = max(newest, finished_at or moment)
        entry = feed.add_entry(order="append")
        entry.id(_tag(links, job, record.public_id))
        entry.title(_entry_title(record))
        # Atom wants an alternate link on each entry: the record's own page on the web, or,
        # when it has none a reader may open, the record in the dashboard.
        link = _web_link(record.url) or links.record_page(record.public_id)
        entry.link(href=link, rel="alternate")
        entry.updated(moment)
        entry.published(moment)
        summary = _xml_text(record.text)
        if summary:
            entry.summary(_shortened(summary, SUMMARY_MAX), type="text")
        author = _xml_text(record.author)
        if author:
            entry.author({"name": author})
        entry.category(term=_xml_text(record.source) or "unknown")
    # The feed changes when a run adds entries: the newest run's finish, not the request time,
    # so an unchanged feed reads the same (and answers 304 to a reader that has it).
    feed.updated(newest)
    return feed.atom_str(pretty=True)
