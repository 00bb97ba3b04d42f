"""Third-party sources from the Python entry-point group "bytestack.sources".

A plugin package declares, in its pyproject.toml:

    [project.entry-points."bytestack.sources"]
    linkedin = "my_package.linkedin:LinkedInSource"

The class has a `name`, and staticmethods `validate(item, index) -> dict` and
`fetch(config, context) -> list[SourceRecord]`; optionally `description` and `credentials`
(names looked up in FetchContext.credentials). A plugin that fails to load, or whose calls
raise anything but SourceError, is reported as a source problem and never stops the app.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from . import FetchContext, SourceError, SourceRecord
from .unavailable import PLUGIN_GROUP, unavailable_source

log = logging.getLogger("bytestack.sources")


def load_plugins(taken: set[str]) -> dict[str, type]:
    """Every installed plugin by entry-point name; ids in `taken` (working built-ins) are
    skipped so a plugin cannot silently replace the rss source, say."""
    found: dict[str, type] = {}
    for entry in _entry_points():
        if entry.name in taken:
            log.warning("plugin source %r (%s) skipped: a built-in source has that id",
                        entry.name, entry.value)
            continue
        found[entry.name] = _load(entry)
    return found


def _entry_points() -> list:
    try:
        return list(entry_points(group=PLUGIN_GROUP))
    except Exception as exc:  # noqa: BLE001  (broken package metadata must not stop the app)
        log.warning("could not list plugin sources: %s", exc)
        return []


def _load(entry) -> type:
    try:
        cls = entry.load()
        missing = [name for name in ("validate", "fetch") if not callable(getattr(cls, name, None))]
        if missing:
            raise TypeError(f"the class has no {' or '.join(missing)}")
    except Exception as exc:  # noqa: BLE001  (whatever a plugin raises, the app starts)
        detail = (
            f"The plugin {entry.value!r} could not be loaded: {type(exc).__name__}: {exc}."
        )
        log.warning("plugin source %r: %s", entry.name, detail)
        return unavailable_source(entry.name, entry.name, detail)
    return guarded(entry.name, cls)


def guarded(source_id: str, cls: type) -> type:
    """The plugin class behind a wrapper that turns its bugs into SourceErrors, so one bad
    plugin fails its own source in a run and not the whole run."""
    name = str(getattr(cls, "name", None) or source_id)

    def call(action: str, function, *args):
        try:
            return function(*args)
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                f"The {name} plugin failed to {action}: {type(exc).__name__}: {exc}."
            ) from exc

    def validate(item: dict, index: int) -> dict:
        config = call("check its settings", cls.validate, item, index)
        if not isinstance(config, dict):
            raise SourceError(f"The {name} plugin's validate() did not return an object.")
        return {**config, "type": source_id}

    def fetch(config: dict, context: FetchContext) -> list[SourceRecord]:
        # list() inside the guard: a generator's bug shows only while it is read.
        return call("fetch", lambda: list(cls.fetch(config, context) or []))

    return type(
        f"Plugin_{source_id}",
        (),
        {
            "id": source_id,
            "name": name,
            "description": str(getattr(cls, "description", "") or f"Plugin source {name}."),
            "available": True,
            "credentials": tuple(getattr(cls, "credentials", ()) or ()),
            "plugin": cls,
            "validate": staticmethod(validate),
            "fetch": staticmethod(fetch),
        },
    )
