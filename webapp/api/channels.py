"""Alert channels over the API (admin): list, create, delete, send a test message."""

from __future__ import annotations

from flask import g

from .. import schemas
from ..settings import channels as service
from ..settings.models import Channel
from . import bp
from .auth import json_body, require
from .openapi import NO_CONTENT, Reply, documented
from .serialize import respond


def channel_out(channel: Channel) -> schemas.Channel:
    return schemas.Channel(
        id=channel.public_id,
        name=channel.name,
        kind=channel.kind,
        masked_url=service.masked_url(channel),
        created_at=channel.created_at,
        last_sent_at=channel.last_sent_at,
        last_error=channel.last_error,
    )


@bp.get("/channels")
@require("admin")
@documented(
    "listChannels", "channels", {200: Reply("The channels, oldest first.", schemas.ChannelList)}
)
def list_channels():
    """The project's alert channels, oldest first; URLs are masked."""
    channels = service.list_channels(g.project)
    return respond(schemas.ChannelList(data=[channel_out(channel) for channel in channels]))


@bp.post("/channels")
@require("admin")
@documented(
    "createChannel",
    "channels",
    {201: Reply("The channel (its URL masked).", schemas.Channel)},
    body=schemas.ChannelCreate,
)
def create_channel():
    """Create a channel from an Apprise URL, which is stored encrypted."""
    body = json_body()
    channel = service.create_channel(g.project, body.get("name"), body.get("url"))
    return respond(channel_out(channel), 201)


@bp.delete("/channels/<channel_id>")
@require("admin")
@documented("deleteChannel", "channels", NO_CONTENT)
def delete_channel(channel_id: str):
    """Delete a channel; the jobs that used it stop alerting there."""
    service.delete_channel(service.get_channel(g.project, channel_id))
    return "", 204


@bp.post("/channels/<channel_id>/test")
@require("admin")
@documented(
    "testChannel",
    "channels",
    {200: Reply("The service accepted the test message.", schemas.ChannelTested)},
    errors=(422,),
)
def test_channel(channel_id: str):
    """Send a test message now (within about 15 s); 422 with the reason when it failed."""
    channel = service.get_channel(g.project, channel_id)
    message = service.test_channel(channel)
    return respond(schemas.ChannelTested(id=channel.public_id, delivered=True, message=message))
