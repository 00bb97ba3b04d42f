"""Apprise URLs of alert channels: what one may be, the service it loads, the hosts it names
and the masked form a person sees. One copy, used by the schema that validates a channel and
by the sender that uses it.

Pure: no Flask, no database, no network (loading a URL only parses it).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import apprise

# Services that notify the machine ByteStack runs on (its log, its desktop), not a person.
LOCAL_SERVICES = frozenset(
    ("syslog", "dbus", "kde", "qt", "glib", "gio", "gnome", "macosx", "windows", "blink1")
)
# Every send is bounded: Apprise's own defaults (4 s, and 15 s to connect for e-mail) and the
# URL's ?cto=/?rto= are replaced, and Apprise's own retries are off (the outbox retries).
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
EXAMPLES = "slack://…, discord://…, mailto://…, tgram://…, ntfy://… or json://host/path"


class ChannelUrlError(ValueError):
    """A URL Apprise cannot use, with a sentence a person can act on."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _asset() -> apprise.AppriseAsset:
    # No background threads, and nothing written to disk by Apprise's persistent store.
    return apprise.AppriseAsset(async_mode=False, storage_mode="memory")


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def load(url: str):
    """The Apprise service `url` names, bounded and refusing redirects; ChannelUrlError with
    Apprise's reason otherwise."""
    scheme = _scheme(url)
    if not scheme or "://" not in url:
        raise ChannelUrlError(f"Use an Apprise URL, such as {EXAMPLES}.")
    if scheme in ("http", "https"):
        raise ChannelUrlError(
            "http:// is not an Apprise service: to POST alerts to a web address use "
            "json://host/path (jsons:// for https)."
        )
    if scheme not in apprise.NotificationManager():
        raise ChannelUrlError(f"Apprise has no service called {scheme}://. Use {EXAMPLES}.")
    if scheme in LOCAL_SERVICES:
        raise ChannelUrlError(
            f"{scheme}:// notifies the server ByteStack runs on, not a person: choose a "
            "service that reaches people."
        )
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        service = apprise.Apprise.instantiate(url, asset=_asset())
    if service is None:
        raise ChannelUrlError(_refusal(scheme, captured.getvalue()))
    service.socket_connect_timeout = CONNECT_TIMEOUT
    service.socket_read_timeout = READ_TIMEOUT
    service.redirects = False  # a redirect could lead a request to an address never checked
    if hasattr(service, "retry"):
        service.retry = 0
    return service


def _refusal(scheme: str, log: str) -> str:
    service_name = apprise.NotificationManager()[scheme].service_name
    reasons = [
        line.strip()
        for line in log.splitlines()
        if line.strip() and not line.startswith(("Could not load", "Unparseable"))
    ]
    if reasons:
        return f"Not a valid {service_name} URL: {reasons[0].rstrip('.')}."
    return f"Not a valid {service_name} URL: check it against Apprise's page for {scheme}://."


def kind_of(service) -> str:
    """The service's own name for itself in URLs: "slack", "mailto", "json"…"""
    for names in (service.protocol, service.secure_protocol):
        if isinstance(names, str) and names:
            return names
        if names:
            return names[0]
    return "apprise"


def hosts_of(service) -> list[tuple[str, int]]:
    """The servers a URL itself names (json://host, ntfy://host, an SMTP server), which the
    private-address guard checks; cloud services (slack://, tgram://…) name only tokens."""
    secure = bool(getattr(service, "secure", False))
    default_port = 443 if secure else 80
    found: list[tuple[str, int]] = []
    tokens = getattr(service, "template_tokens", None) or {}
    if "host" in tokens and service.host:
        found.append((service.host, service.port or default_port))
    smtp_host = getattr(service, "smtp_host", None)
    if smtp_host:
        found.append((smtp_host, service.port or 25))
    return list(dict.fromkeys(found))


def masked(url: str) -> str:
    """The URL as a person may see it: service, host and path with every secret replaced,
    and no query string."""
    try:
        service = load(url)
        shown = urlsplit(service.url(privacy=True))
    except (ChannelUrlError, ValueError):
        return f"{_scheme(url) or 'apprise'}://…"
    return f"{shown.scheme}://{shown.netloc}{shown.path}".rstrip("/")
