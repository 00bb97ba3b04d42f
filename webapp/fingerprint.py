"""Record fingerprints that stay the same across runs: canonical URL, else platform id."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING_PREFIXES = ("utm_", "mc_", "fbclid", "gclid", "ref_src", "igshid")


def canonical_url(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    host = host.removeprefix("www.")
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else (
        f"{host}:{port}"
    )
    if scheme in ("http", "https"):
        scheme = "https"
    query = urlencode(
        sorted(
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not k.lower().startswith(_TRACKING_PREFIXES)
        )
    )
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path, query, ""))


def fingerprint(source: str, url: str | None, platform_id: str | None, title: str | None) -> str:
    if url:
        key = "url:" + canonical_url(url)
    elif platform_id:
        key = f"id:{source}:{platform_id}"
    else:
        key = f"title:{source}:{(title or '').strip().casefold()}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def domain_of(url: str | None) -> str | None:
    """The host of a record's URL without "www.", for grouping by site."""
    if not url:
        return None
    try:
        host = (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return None
    host = host.removeprefix("www.")
    return host[:255] or None
