"""Secrets at rest (webhook secrets, source credentials): Fernet, keyed from the app's config.

Encrypted rather than hashed because they must be read back: a webhook secret signs each
delivery with HMAC, and a source credential is sent to the platform.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

HKDF_INFO = b"bytestack-secrets"


class DecryptionError(Exception):
    """A stored secret the current key cannot open: the key changed after it was saved."""


def derive_key(secret_key: str | bytes) -> bytes:
    """A Fernet key derived from SECRET_KEY; HKDF keeps it apart from the session-signing key."""
    material = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(material)
    return base64.urlsafe_b64encode(raw)


def _fernet() -> Fernet:
    config = current_app.config
    return Fernet(config.get("ENCRYPTION_KEY") or derive_key(config["SECRET_KEY"]))


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise DecryptionError(
            "A stored secret cannot be decrypted: SECRET_KEY or BYTESTACK_ENCRYPTION_KEY "
            "changed after it was saved. Set it again."
        ) from None
