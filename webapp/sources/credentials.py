"""The credentials a run of a project's sources uses: the environment's, overlaid with those
the project stores in Settings (decrypted here, below the services that manage them)."""

from __future__ import annotations

import logging

from sqlalchemy import select

from ..crypto import DecryptionError
from ..extensions import db
from ..settings.models import SourceCredential
from .common import credentials_from_environment

log = logging.getLogger(__name__)


def stored_credentials(project_id: int) -> dict[str, str]:
    """The credentials a project stores, decrypted; one that cannot be decrypted is left out."""
    found: dict[str, str] = {}
    rows = db.session.scalars(
        select(SourceCredential).where(SourceCredential.project_id == project_id)
    )
    for row in rows:
        try:
            found[row.name] = row.value
        except DecryptionError:
            # A run must not fail on it: the source reports the credential as missing instead.
            log.warning("credential %s of project %s cannot be decrypted", row.name, project_id)
    return found


def project_credentials(project_id: int) -> dict[str, str]:
    """The credentials a run or a status check of this project uses; the project's win."""
    return {**credentials_from_environment(), **stored_credentials(project_id)}
