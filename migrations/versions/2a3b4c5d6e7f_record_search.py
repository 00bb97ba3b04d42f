"""Full-text search over records

Revision ID: 2a3b4c5d6e7f
Revises: 1f2e3d4c5b6a
Create Date: 2026-12-01 17:30:00.000000

SQLite: an FTS5 index with external content (records) and the triggers that keep it in step,
filled from the records already stored. PostgreSQL: a text search configuration (simple, with
unaccent), a generated stored tsvector column, computed for every existing row as it is
added (the table is rewritten under an exclusive lock: a while on millions of records), and
its GIN index. The same objects as webapp/storage/search_schema.py builds for create_all.
"""
import string

from alembic import op

# revision identifiers, used by Alembic.
revision = '2a3b4c5d6e7f'
down_revision = '1f2e3d4c5b6a'
branch_labels = None
depends_on = None

INDEXED_CHARS = 100_000
PUNCTUATION = string.punctuation.replace("'", "''")
SPACES = " " * len(string.punctuation)

SQLITE_UPGRADE = (
    "CREATE VIRTUAL TABLE records_fts USING fts5(title, text, author, content='records', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER records_fts_insert AFTER INSERT ON records BEGIN "
    "INSERT INTO records_fts (rowid, title, text, author) "
    "VALUES (new.id, new.title, new.text, new.author); END",
    "CREATE TRIGGER records_fts_delete AFTER DELETE ON records BEGIN "
    "INSERT INTO records_fts (records_fts, rowid, title, text, author) "
    "VALUES ('delete', old.id, old.title, old.text, old.author); END",
    "CREATE TRIGGER records_fts_update AFTER UPDATE OF title, text, author ON records BEGIN "
    "INSERT INTO records_fts (records_fts, rowid, title, text, author) "
    "VALUES ('delete', old.id, old.title, old.text, old.author); "
    "INSERT INTO records_fts (rowid, title, text, author) "
    "VALUES (new.id, new.title, new.text, new.author); END",
    # Indexes every record stored before this revision, read from the content table.
    "INSERT INTO records_fts (records_fts) VALUES ('rebuild')",
)
SQLITE_DOWNGRADE = (
    "DROP TRIGGER records_fts_update",
    "DROP TRIGGER records_fts_delete",
    "DROP TRIGGER records_fts_insert",
    "DROP TABLE records_fts",
)


def _vector(column, weight):
    return (
        f"setweight(to_tsvector('bytestack_search'::regconfig, translate(left(coalesce({column}, "
        f"''), {INDEXED_CHARS}), '{PUNCTUATION}', '{SPACES}')), '{weight}')"
    )


POSTGRESQL_UPGRADE = (
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    """
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'bytestack_search') THEN
        CREATE TEXT SEARCH CONFIGURATION bytestack_search (COPY = simple);
        ALTER TEXT SEARCH CONFIGURATION bytestack_search
          ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part,
            numword, numhword, hword_numpart
          WITH unaccent, simple;
      END IF;
    END $$
    """,
    "ALTER TABLE records ADD COLUMN search_vector tsvector GENERATED ALWAYS AS ("
    f"{_vector('title', 'A')} || {_vector('text', 'B')} || {_vector('author', 'C')}) STORED",
    "CREATE INDEX ix_records_search_vector ON records USING gin (search_vector)",
    # Statistics on ten times the words: the planner's choice between walking records newest
    # first and the GIN index depends on them.
    "ALTER TABLE records ALTER COLUMN search_vector SET STATISTICS 1000",
)
# The unaccent extension stays: it may have been there before, and costs nothing unused.
POSTGRESQL_DOWNGRADE = (
    "DROP INDEX ix_records_search_vector",
    "ALTER TABLE records DROP COLUMN search_vector",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS bytestack_search",
)


def _run(statements):
    # op.execute compiles each as text(), which escapes the % of the punctuation list for
    # the psycopg driver; no statement holds a ":name" that would read as a parameter.
    for statement in statements:
        op.execute(statement)


def upgrade():
    if op.get_bind().dialect.name == 'sqlite':
        _run(SQLITE_UPGRADE)
    else:
        _run(POSTGRESQL_UPGRADE)


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        _run(SQLITE_DOWNGRADE)
    else:
        _run(POSTGRESQL_DOWNGRADE)
