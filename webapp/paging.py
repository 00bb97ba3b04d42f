"""Paging, written once: keyset pages by an id column (API cursors, Storage) and numbered
pages (the dashboard's job list, a job's run history, a run's records)."""

from __future__ import annotations

from sqlalchemy import Select

from .extensions import db

# An offset past 64 bits would overflow the database driver.
MAX_PAGE = 1_000_000


def keyset(
    stmt: Select, column, start: int | None, limit: int, descending: bool = True,
    scalars: bool = True,
) -> tuple[list, bool]:
    """Up to `limit` rows of `stmt` ordered by the id `column`, beyond the id `start` (below
    it when `descending`, above it otherwise); and whether more rows follow."""
    if start is not None:
        stmt = stmt.where(column < start if descending else column > start)
    stmt = stmt.order_by(column.desc() if descending else column.asc()).limit(limit + 1)
    result = db.session.scalars(stmt) if scalars else db.session.execute(stmt)
    rows = result.all()
    return rows[:limit], len(rows) > limit


def numbered(stmt: Select, page: int, per_page: int) -> tuple[list, bool]:
    """Page `page` (from 1) of `stmt`, already ordered; and whether a next page exists. No
    COUNT: one more row than the page tells whether there is a next one."""
    page = min(max(page, 1), MAX_PAGE)
    rows = db.session.scalars(stmt.offset((page - 1) * per_page).limit(per_page + 1)).all()
    return rows[:per_page], len(rows) > per_page
