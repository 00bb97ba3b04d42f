"""Public ids: a type prefix and a ULID (job_01J…); integer keys stay internal."""

from __future__ import annotations

from ulid import ULID

PREFIXES = ("job", "run", "qry", "wh", "key", "rec", "prj", "usr", "inv", "chn", "dlv")


def new_public_id(prefix: str) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ULID()}"
