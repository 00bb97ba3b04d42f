"""Bearer API keys: stored as SHA-256 hashes, one project and one scope each."""

from __future__ import annotations

import functools
import hashlib
import secrets

from flask import g, request
from sqlalchemy import select

from ..extensions import db
from ..models import KEY_SCOPES, ApiKey, Project
from ..schemas import refuse_unstorable_text, storable
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

        wrapped.required_scope = scope  # the OpenAPI document reads it
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
    refuse_unstorable_text(data)  # 422 naming the field, before any rule reads it
    return data


def refuse_unstorable_path_values(values: dict) -> None:
    """An id with NUL (or an unpaired surrogate) names nothing; asking PostgreSQL for it
    would be an error, not an empty result."""
    if any(isinstance(value, str) and not storable(value) for value in values.values()):
        raise ApiError(404, "There is nothing at this path.")
