"""Alert channels: one copy of the rules for the dashboard and the API — create (validated by
Apprise and the private-address guard), list (masked), test, delete — and the check that a
job's alert rules name channels of its own project."""

from __future__ import annotations

from sqlalchemy import select

from .. import channel_urls
from ..crypto import DecryptionError
from ..errors import ValidationError
from ..extensions import db
from ..models import Job, Project, get_in_project
from ..notifications import alerts
from ..schemas import ChannelCreate, validate
from ..sources.http import FetchError
from ..timeutil import now
from .models import Channel

MAX_CHANNELS = 50
TEST_TITLE = "ByteStack test message"


def list_channels(project: Project) -> list[Channel]:
    return list(
        db.session.scalars(
            select(Channel).where(Channel.project_id == project.id).order_by(Channel.id)
        )
    )


def get_channel(project: Project, public_id: str) -> Channel:
    return get_in_project(Channel, project.id, public_id, "No such channel in this project.")


def create_channel(project: Project, name, url) -> Channel:
    """Create a channel from a name and an Apprise URL; the URL is stored encrypted. A URL
    naming a server at a private or local address is refused (one that does not resolve
    yet is kept: its sends will say so)."""
    spec = validate(ChannelCreate, {"name": name, "url": url})
    if len(list_channels(project)) >= MAX_CHANNELS:
        raise ValidationError({"name": f"A project can have at most {MAX_CHANNELS} channels."})
    service = channel_urls.load(spec.url)
    try:
        alerts.guard(service, unresolvable_ok=True)
    except FetchError as exc:
        raise ValidationError({"url": str(exc)}) from None
    channel = Channel(project_id=project.id, name=spec.name, kind=channel_urls.kind_of(service))
    channel.url = spec.url
    db.session.add(channel)
    db.session.commit()
    return channel


def masked_url(channel: Channel) -> str:
    try:
        return channel_urls.masked(channel.url)
    except DecryptionError:
        return f"{channel.kind}://… (cannot be decrypted: save the channel again)"


def service_name(channel: Channel) -> str:
    """The service as people call it ("Slack", "E-Mail")."""
    try:
        return channel_urls.load(channel.url).service_name
    except (channel_urls.ChannelUrlError, DecryptionError):
        return channel.kind


def test_channel(channel: Channel) -> str:
    """Send a test message now (bounded by Apprise's timeouts); the sentence saying it went,
    or ValidationError on `url` with the reason it did not."""
    project = db.session.get(Project, channel.project_id)
    try:
        url = channel.url
    except DecryptionError as exc:
        raise ValidationError({"url": str(exc)}) from None
    outcome = alerts.send_message(
        url,
        TEST_TITLE,
        f"This is a test of the channel “{channel.name}” of the project “{project.name}”. "
        "Alerts of the jobs that use it arrive like this.",
        "test",
    )
    if outcome.delivered:
        channel.last_sent_at, channel.last_error = now(), None
    else:
        channel.last_error = outcome.error
    db.session.commit()
    if not outcome.delivered:
        raise ValidationError({"url": f"The test message was not sent: {outcome.error}"})
    return f"A test message was sent to “{channel.name}”."


def _jobs_with_alerts(project_id: int) -> list[Job]:
    return list(
        db.session.scalars(
            select(Job)
            .where(Job.project_id == project_id, Job.alerts.is_not(None))
            .order_by(Job.id)
        )
    )


def channel_users(project: Project) -> dict[str, list[Job]]:
    """The jobs whose alert rules name each channel."""
    users: dict[str, list[Job]] = {}
    for job in _jobs_with_alerts(project.id):
        for public_id in (job.alerts or {}).get("channels", []):
            users.setdefault(public_id, []).append(job)
    return users


def delete_channel(channel: Channel) -> None:
    """Delete a channel and take it out of every job's alert rules (alerts planned for it
    and not yet sent fail as deleted)."""
    for job in _jobs_with_alerts(channel.project_id):
        rules = job.alerts or {}
        if channel.public_id in rules.get("channels", []):
            job.alerts = {
                **rules,
                "channels": [c for c in rules["channels"] if c != channel.public_id],
            }
    db.session.delete(channel)
    db.session.commit()


def check_alert_channels(project_id: int, rules: dict | None) -> dict | None:
    """The rules, when every channel they name is one of the project's; ValidationError on
    `alerts` naming the first that is not."""
    if not rules:
        return rules
    known = set(
        db.session.scalars(
            select(Channel.public_id).where(
                Channel.project_id == project_id, Channel.public_id.in_(rules["channels"])
            )
        )
    )
    for public_id in rules["channels"]:
        if public_id not in known:
            raise ValidationError(
                {"alerts": f"alerts.channels: {public_id} is not a channel of this project."}
            )
    return rules
