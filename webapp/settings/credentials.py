"""Source credentials: the environment's, overlaid with those a project stores in Settings."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..crypto import DecryptionError, encrypt
from ..errors import ConflictError, ValidationError
from ..extensions import db
from ..models import Project
from ..sources import SOURCE_TYPES
from ..sources.common import CREDENTIALS, credentials_from_environment
from ..sources.credentials import project_credentials, stored_credentials
from .models import SourceCredential

__all__ = ["project_credentials", "stored_credentials"]

log = logging.getLogger(__name__)
MAX_CREDENTIAL_LENGTH = 4000


def credential_names() -> list[str]:
    """Every credential a source can use: the built-ins' and any that plugins declare."""
    names = list(CREDENTIALS)
    for cls in SOURCE_TYPES.values():
        for name in (*getattr(cls, "credentials", ()), *getattr(cls, "optional_credentials", ())):
            # The column holds 40 characters; a plugin naming a longer one cannot be stored.
            if isinstance(name, str) and len(name) <= 40 and name not in names:
                names.append(name)
    return names


def credential_states(project: Project) -> dict[str, str]:
    """For each credential name: "set", "not set" or "unreadable" — never the value."""
    rows = {
        row.name: row
        for row in db.session.scalars(
            select(SourceCredential).where(SourceCredential.project_id == project.id)
        )
    }
    states = {}
    for name in credential_names():
        row = rows.get(name)
        if row is None:
            states[name] = "not set"
            continue
        try:
            row.value  # noqa: B018  (decrypting is the check)
        except DecryptionError:
            states[name] = "unreadable"
        else:
            states[name] = "set"
    return states


def environment_credential_names() -> set[str]:
    return set(credentials_from_environment())


def set_credential(project: Project, name, value) -> None:
    """Store (or replace) one credential for the project, encrypted."""
    if name not in credential_names():
        raise ValidationError({"name": "Choose one of the listed credentials."})
    if not isinstance(value, str) or not value.strip():
        raise ValidationError({name: "Enter a value, or use Clear to remove the stored one."})
    value = value.strip()
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise ValidationError(
            {name: f"A credential can be at most {MAX_CREDENTIAL_LENGTH} characters."}
        )
    encrypted = encrypt(value)
    for _ in range(2):
        row = _stored(project, name)
        if row is None:
            db.session.add(
                SourceCredential(project_id=project.id, name=name, value_encrypted=encrypted)
            )
        else:
            row.value_encrypted = encrypted
        try:
            db.session.commit()
            return
        except IntegrityError:
            # Someone stored the same name at the same moment: replace theirs instead.
            db.session.rollback()
    raise ConflictError("The credential changed meanwhile; try again.")


def _stored(project: Project, name: str) -> SourceCredential | None:
    return db.session.scalar(
        select(SourceCredential).where(
            SourceCredential.project_id == project.id, SourceCredential.name == name
        )
    )


def clear_credential(project: Project, name) -> bool:
    """Remove a stored credential; False when none was stored."""
    if name not in credential_names():
        raise ValidationError({"name": "Choose one of the listed credentials."})
    row = _stored(project, name)
    if row is None:
        return False
    db.session.delete(row)
    db.session.commit()
    return True
