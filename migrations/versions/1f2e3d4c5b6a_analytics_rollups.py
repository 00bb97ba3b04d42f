"""Analytics rollups per day: records, new records, per source, per domain, distinct authors

Revision ID: 1f2e3d4c5b6a
Revises: f3a4b5c6d7e8
Create Date: 2026-12-01 17:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1f2e3d4c5b6a'
down_revision = 'f3a4b5c6d7e8'
branch_labels = None
depends_on = None

# Stored job runs' records, grouped as the rollups count them (one-off queries excluded).
FROM_RECORDS = """
    FROM records r JOIN runs ON runs.id = r.run_id
    WHERE runs.job_id IS NOT NULL
"""


def _day(dialect: str) -> str:
    moment = "COALESCE(runs.started_at, runs.scheduled_for)"
    return f"CAST({moment} AS DATE)" if dialect == "postgresql" else f"date({moment})"


def _project() -> sa.Column:
    return sa.Column(
        'project_id', sa.Integer(), sa.ForeignKey('projects.id', ondelete='CASCADE'),
        primary_key=True, nullable=False,
    )


def upgrade():
    op.create_table(
        'rollup_days',
        _project(),
        sa.Column('day', sa.Date(), primary_key=True, nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('new_records', sa.Integer(), nullable=False),
        sa.Column('authors', sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'rollup_sources',
        _project(),
        sa.Column('day', sa.Date(), primary_key=True, nullable=False),
        sa.Column('source', sa.String(length=40), primary_key=True, nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('new_records', sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'rollup_domains',
        _project(),
        sa.Column('day', sa.Date(), primary_key=True, nullable=False),
        sa.Column('domain', sa.String(length=255), primary_key=True, nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'rollup_authors',
        _project(),
        sa.Column('day', sa.Date(), primary_key=True, nullable=False),
        sa.Column('author', sa.String(length=500), primary_key=True, nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sqlite_with_rowid=False,
    )
    day = _day(op.get_bind().dialect.name)
    new = "SUM(CASE WHEN r.is_new THEN 1 ELSE 0 END)"
    op.execute(
        f"INSERT INTO rollup_sources (project_id, day, source, records, new_records) "
        f"SELECT runs.project_id, {day}, r.source, COUNT(*), {new} {FROM_RECORDS} "
        f"GROUP BY runs.project_id, {day}, r.source"
    )
    op.execute(
        f"INSERT INTO rollup_domains (project_id, day, domain, records) "
        f"SELECT runs.project_id, {day}, r.domain, COUNT(*) {FROM_RECORDS} "
        f"AND r.domain IS NOT NULL AND r.domain <> '' GROUP BY runs.project_id, {day}, r.domain"
    )
    op.execute(
        f"INSERT INTO rollup_authors (project_id, day, author, records) "
        f"SELECT runs.project_id, {day}, r.author, COUNT(*) {FROM_RECORDS} "
        f"AND r.author IS NOT NULL AND r.author <> '' GROUP BY runs.project_id, {day}, r.author"
    )
    op.execute(
        "INSERT INTO rollup_days (project_id, day, records, new_records, authors) "
        "SELECT s.project_id, s.day, SUM(s.records), SUM(s.new_records), "
        "(SELECT COUNT(*) FROM rollup_authors a WHERE a.project_id = s.project_id "
        "AND a.day = s.day) FROM rollup_sources s GROUP BY s.project_id, s.day"
    )


def downgrade():
    for table in ('rollup_authors', 'rollup_domains', 'rollup_sources', 'rollup_days'):
        op.drop_table(table)
