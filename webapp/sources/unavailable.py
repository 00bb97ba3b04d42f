"""Sources that cannot be built in: platforms without a public API, and broken plugins.

They stay in the registry so a person sees why they are missing and how to add them, and a
job that names one fails with that sentence instead of "unknown source".
"""

from __future__ import annotations

from typing import NoReturn

from . import FetchContext, SourceError

PLUGIN_GROUP = "bytestack.sources"
PLATFORMS = {
    "linkedin": "LinkedIn",
    "tiktok": "TikTok",
    "instagram": "Instagram",
    "facebook": "Facebook",
}


def plugin_hint(source_id: str) -> str:
    return (
        f"A plugin can add it: a Python package that registers a source class (with validate "
        f"and fetch, like the built-in ones) under the entry-point group {PLUGIN_GROUP!r} "
        f"with the name {source_id!r}, installed next to ByteStack."
    )


def no_public_api(name: str, source_id: str) -> str:
    return f"{name} has no public API for searching posts, so it is not built in. " + plugin_hint(
        source_id
    )


def unavailable_source(source_id: str, name: str, detail: str) -> type:
    """A registry entry whose every use raises SourceError(detail)."""

    def validate(item: dict, index: int) -> NoReturn:
        raise SourceError(f"Source {index} ({source_id}): {detail}")

    # A job saved while a plugin was installed can outlive it: its runs say why.
    def fetch(config: dict, context: FetchContext) -> NoReturn:
        raise SourceError(detail)

    return type(
        f"Unavailable_{source_id}",
        (),
        {
            "id": source_id,
            "name": name,
            "description": detail,
            "available": False,
            "credentials": (),
            "validate": staticmethod(validate),
            "fetch": staticmethod(fetch),
        },
    )


UNAVAILABLE_PLATFORMS = {
    source_id: unavailable_source(source_id, name, no_public_api(name, source_id))
    for source_id, name in PLATFORMS.items()
}
