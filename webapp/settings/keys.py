"""API keys: create (the secret shown once), list, revoke; for the dashboard and the API."""

from __future__ import annotations

from sqlalchemy import select

from ..api.auth import create_api_key
from ..extensions import db
from ..models import ApiKey, Project, get_in_project
from ..schemas import ApiKeyCreate, validate
from ..timeutil import now


def list_keys(project: Project) -> list[ApiKey]:
    """Every key of the project, revoked ones too (they say when), newest first."""
    return list(
        db.session.scalars(
            select(ApiKey).where(ApiKey.project_id == project.id).order_by(ApiKey.id.desc())
        )
    )


def get_key(project: Project, public_id: str) -> ApiKey:
    return get_in_project(ApiKey, project.id, public_id, "No such API key in this project.")


def create_key(project: Project, name, scope) -> tuple[ApiKey, str]:
    """Validate and create a key; the secret is returned once and only its hash is kept."""
    spec = validate(ApiKeyCreate, {"name": name, "scope": scope})
    return create_api_key(project, spec.scope, spec.name)


def revoke_key(key: ApiKey) -> ApiKey:
    """Revoke a key: from now on it answers 401. Revoking twice keeps the first time."""
    if key.revoked_at is None:
        key.revoked_at = now()
        db.session.commit()
    return key
