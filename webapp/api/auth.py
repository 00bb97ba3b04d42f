"""Bearer API keys: stored as SHA-256 hashes, one project and one scope each."""

from __future__ import annotations

import functools
import hashlib
import secrets

from flask import g, request
from sqlalchemy import select

from ..extensions import db
from ..models import KEY_SCOPES, ApiKey, Project
from ..timeutil import now
from .errors import ApiError

KEY_PREFIX = "bsk_"


def hash_key(secret: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is as safe as a slow one here.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_api_key(project: Project, scope: str, name: str = "") -> tuple[ApiKey, str]:
    """Create a key; the secret is returned once and only its hash is stored."""
    if scope not in KEY_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(KEY_SCOPES)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        project_id=project.id,
        name=name,
        scope=scope,
        prefix=secret[: len(KEY_PREFIX) + 6],
        key_hash=hash_key(secret),
    )
    db.session.add(key)
    db.session.commit()
    return key, secret


def authenticate() -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Send an API key as 'Authorization: Bearer <key>'.")
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(token.strip())))
    if key is None or key.revoked_at is not None:
        raise ApiError(401, "This API key is unknown or has been revoked.")
    moment = now()
    if key.last_used_at is None or (moment - key.last_used_at).total_seconds() > 60:
        key.last_used_at = moment
        db.session.commit()
    return key


def require(scope: str):
    """Authenticate the request and require at least `scope`; sets g.api_key and g.project."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            key = authenticate()
            if not key.allows(scope):
                raise ApiError(403, f"This key's scope is {key.scope}; this needs {scope}.")
            g.api_key = key
            g.project = key.project
            refuse_unstorable_path_values(kwargs)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def json_body() -> dict:
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes; `silent` covers ValueError only
        data = None
    if data is None:
        raise ApiError(400, "The body must be a JSON object.", code="malformed_json")
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.", code="malformed_json")
    _refuse_unstorable_text(data)
    return data


def _storable(text: str) -> bool:
    """Text a database can keep: no NUL (PostgreSQL refuses it) and no lone surrogate
    ("\\ud800" is valid JSON but not Unicode that UTF-8 can encode)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_unstorable_text(data: dict) -> None:
    """422 naming the top-level field whose value (or key) holds unstorable text."""
    for name, value in data.items():
        bad = not _storable(name)
        stack = [value]
        while stack and not bad:  # iterative: the body may nest almost as deep as the parser
            item = stack.pop()
            if isinstance(item, str):
                bad = not _storable(item)
            elif isinstance(item, dict):
                bad = not all(_storable(key) for key in item)
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        if bad:
            message = "Text cannot contain NUL characters or unpaired surrogates."
            if _storable(name):
                raise ApiError(422, f"{name}: {message}", field=name)
            raise ApiError(422, message)


def refuse_unstorable_path_values(values: dict) -> None:
    """An id with NUL (or an unpaired surrogate) names nothing; asking PostgreSQL for it
    would be an error, not an empty result."""
    if any(isinstance(value, str) and not _storable(value) for value in values.values()):
        raise ApiError(404, "There is nothing at this path.")
