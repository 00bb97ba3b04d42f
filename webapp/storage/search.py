"""Full-text search in SQL, for either engine, and highlighted excerpts safe to show as HTML.

The query text comes from webapp.storage.search_syntax (every word quoted) and is always a
bound parameter; the index is built by webapp.storage.search_schema.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape
from sqlalchemy import Integer, Select, column, func, literal_column, select, table
from sqlalchemy.dialects.postgresql import REGCONFIG, TSVECTOR

from ..extensions import db
from ..models import Record
from .search_schema import FTS_TABLE, INDEXED_CHARS, TS_CONFIG, VECTOR_COLUMN
from .search_syntax import SearchQuery

_FTS = table(FTS_TABLE, column("rowid", Integer), column(FTS_TABLE))
_VECTOR = literal_column(f"records.{VECTOR_COLUMN}", TSVECTOR)
# Words around the matches in a text's excerpt.
EXCERPT_WORDS = 24


@dataclass(frozen=True)
class Highlight:
    """A record's title, text excerpt and author with the matched words in <mark>."""

    title: Markup | None
    text: Markup | None
    author: Markup | None


def _engine() -> str:
    return db.session.get_bind().dialect.name


def _config():
    # Written into the SQL, not bound: a bound name becomes regconfig at run time only, so
    # to_tsquery() would not be folded into a constant when the statement is planned, the
    # planner could not use the column's statistics, and every row would parse the query.
    return literal_column(f"'{TS_CONFIG}'::regconfig", REGCONFIG)


def _tsquery(text: str):
    return func.to_tsquery(_config(), text)


def matching(stmt: Select, query: SearchQuery) -> tuple[Select, Any]:
    """`stmt` (over records) narrowed to the records `query` finds, and the id column to
    order and page them by."""
    if _engine() == "sqlite":
        # The index leads: ordered by its own rowid, FTS5 hands out matches newest first and
        # the page stops after its last row. Ordered by records.id, SQLite would walk the
        # project's records instead and ask the index about each one.
        stmt = stmt.join(_FTS, _FTS.c.rowid == Record.id).where(
            _FTS.c[FTS_TABLE].match(query.fts5())
        )
        return stmt, _FTS.c.rowid
    return stmt.where(_VECTOR.bool_op("@@")(_tsquery(query.tsquery()))), Record.id


def _markers() -> tuple[str, str]:
    # Fresh for every call and random, so no stored text can hold them: an excerpt's only
    # markers are the engine's. (Noncharacters around the nonce keep them out of words.)
    nonce = secrets.token_hex(8)
    return f"\ufdd0{nonce}\ufdd1", f"\ufdd1{nonce}\ufdd0"


def marked(excerpt: str | None, opening: str, closing: str) -> Markup | None:
    """`excerpt` as HTML: all of it escaped, then each opening…closing pair a <mark>."""
    if excerpt is None:
        return None
    pieces = excerpt.split(opening)
    html = [escape(pieces[0])]
    for piece in pieces[1:]:
        inside, _, after = piece.partition(closing)
        html += [Markup("<mark>%s</mark>") % inside, escape(after)]
    return Markup("").join(html)


def highlights(query: SearchQuery, record_ids: list[int]) -> dict[int, Highlight]:
    """The highlighted fields of the given records (a page of results), by record id; read
    in a query of its own so the page's query stays a plain walk of the index."""
    if not record_ids:
        return {}
    opening, closing = _markers()
    if _engine() == "sqlite":
        index = literal_column(FTS_TABLE)
        stmt = select(
            _FTS.c.rowid,
            func.highlight(index, 0, opening, closing),
            func.snippet(index, 1, opening, closing, "…", EXCERPT_WORDS),
            func.highlight(index, 2, opening, closing),
        ).where(_FTS.c[FTS_TABLE].match(query.fts5()), _FTS.c.rowid.in_(record_ids))
    else:
        # ts_headline would also mark the excluded words: it gets the wanted ones only.
        wanted = _tsquery(query.tsquery(exclusions=False))
        markers = f'StartSel="{opening}", StopSel="{closing}"'
        whole = f"{markers}, HighlightAll=true"
        excerpt = f"{markers}, MaxWords={EXCERPT_WORDS}, MinWords={EXCERPT_WORDS // 2}"
        stmt = select(
            Record.id,
            func.ts_headline(_config(), Record.title, wanted, whole),
            func.ts_headline(_config(), func.left(Record.text, INDEXED_CHARS), wanted, excerpt),
            func.ts_headline(_config(), Record.author, wanted, whole),
        ).where(Record.id.in_(record_ids))
    return {
        record_id: Highlight(*(marked(value, opening, closing) for value in values))
        for record_id, *values in db.session.execute(stmt)
    }
