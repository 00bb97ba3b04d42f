"""The full-text index over records (title, text, author), built with the records table.

SQLite: an FTS5 table with external content (it stores the index only, and reads title,
text and author from `records` when it highlights), kept in step by triggers, so every
INSERT and DELETE (the bulk ingest, a run's cascaded delete) updates it without app code.
PostgreSQL: a generated, stored tsvector column with a GIN index.

Both split text the same way as far as the engines allow: at everything but letters, digits
and marks, folding case and diacritics ("Café" is found by "cafe"), with no stemming and no
stop words. PostgreSQL's parser would keep "example.com" or "e-mail" whole, so ASCII
punctuation becomes spaces before it parses; its `unaccent` dictionary folds diacritics as
SQLite's `remove_diacritics 2` does (and a few letters more: ß, æ, ø).

The migration (2a3b4c5d6e7f) builds the same objects; this module builds them for
`db.create_all()`. Alembic's comparison leaves them out (`is_compared`): they are not
SQLAlchemy columns or tables.
"""

from __future__ import annotations

import string

from sqlalchemy import DDL, Table, event

FTS_TABLE = "records_fts"
VECTOR_COLUMN = "search_vector"
VECTOR_INDEX = "ix_records_search_vector"
TS_CONFIG = "bytestack_search"
# A tsvector holds at most 1 MiB: PostgreSQL indexes the first this many characters of each
# field, so that one huge page of text cannot make a whole run fail to store.
INDEXED_CHARS = 100_000
_PUNCTUATION = string.punctuation.replace("'", "''")
_SPACES = " " * len(string.punctuation)

SQLITE_DDL = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(title, text, author, content='records', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN "
    f"INSERT INTO {FTS_TABLE} (rowid, title, text, author) "
    "VALUES (new.id, new.title, new.text, new.author); END",
    # An external-content index forgets a row only when told the values it indexed.
    f"CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN "
    f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rowid, title, text, author) "
    "VALUES ('delete', old.id, old.title, old.text, old.author); END",
    f"CREATE TRIGGER records_fts_update AFTER UPDATE OF title, text, author ON records BEGIN "
    f"INSERT INTO {FTS_TABLE} ({FTS_TABLE}, rowid, title, text, author) "
    "VALUES ('delete', old.id, old.title, old.text, old.author); "
    f"INSERT INTO {FTS_TABLE} (rowid, title, text, author) "
    "VALUES (new.id, new.title, new.text, new.author); END",
)
SQLITE_DROP = (f"DROP TABLE IF EXISTS {FTS_TABLE}",)


def _vector(column: str, weight: str) -> str:
    return (
        f"setweight(to_tsvector('{TS_CONFIG}'::regconfig, translate(left(coalesce({column}, ''), "
        f"{INDEXED_CHARS}), '{_PUNCTUATION}', '{_SPACES}')), '{weight}')"
    )


# A text search configuration cannot be created "if not exists"; the DO block makes the
# statement safe to repeat (create_all runs once per test on the same database).
POSTGRESQL_CONFIG = f"""
CREATE EXTENSION IF NOT EXISTS unaccent;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = '{TS_CONFIG}') THEN
    CREATE TEXT SEARCH CONFIGURATION {TS_CONFIG} (COPY = simple);
    ALTER TEXT SEARCH CONFIGURATION {TS_CONFIG}
      ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part,
        numword, numhword, hword_numpart
      WITH unaccent, simple;
  END IF;
END $$
"""
POSTGRESQL_DDL = (
    POSTGRESQL_CONFIG,
    # Weights tell the columns apart, so that a phrase never runs from a title into a text.
    f"ALTER TABLE records ADD COLUMN {VECTOR_COLUMN} tsvector GENERATED ALWAYS AS ("
    f"{_vector('title', 'A')} || {_vector('text', 'B')} || {_vector('author', 'C')}) STORED",
    f"CREATE INDEX {VECTOR_INDEX} ON records USING gin ({VECTOR_COLUMN})",
    # The planner picks between walking records newest first and the GIN index by how many
    # records it expects a word in; the default sample tracks too few words for that
    # (mid-frequency ones were walked for: 70 ms instead of 7 ms at a million records).
    f"ALTER TABLE records ALTER COLUMN {VECTOR_COLUMN} SET STATISTICS 1000",
)


def install(records: Table) -> None:
    """Build the index whenever the records table is created, on either engine."""
    for when, dialect, statements in (
        ("after_create", "sqlite", SQLITE_DDL),
        ("before_drop", "sqlite", SQLITE_DROP),
        ("after_create", "postgresql", POSTGRESQL_DDL),
    ):
        for statement in statements:
            # DDL() formats its text with %: the punctuation list holds a literal one.
            ddl = DDL(statement.replace("%", "%%")).execute_if(dialect=dialect)
            event.listen(records, when, ddl)


def is_compared(name: str | None, type_: str, parent_names: dict) -> bool:
    """Alembic's include_name: the index's own tables, column and index are not the models'."""
    if type_ == "table":
        return not (name or "").startswith(FTS_TABLE)
    if type_ == "column":
        return not (parent_names.get("table_name") == "records" and name == VECTOR_COLUMN)
    if type_ == "index":
        return name != VECTOR_INDEX
    return True
