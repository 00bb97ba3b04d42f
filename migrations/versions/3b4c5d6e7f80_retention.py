"""Retention policy per project

Revision ID: 3b4c5d6e7f80
Revises: 2a3b4c5d6e7f
Create Date: 2026-12-01 17:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3b4c5d6e7f80'
down_revision = '2a3b4c5d6e7f'
branch_labels = None
depends_on = None

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for INCREMENTAL


def upgrade():
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('retention_runs_per_job', sa.Integer(), nullable=True))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stored_bytes', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_webhook_deliveries_run_id'), ['run_id'], unique=False
        )
    if op.get_bind().dialect.name == 'sqlite':
        _incremental_auto_vacuum()


def _incremental_auto_vacuum():
    """A SQLite file made before this revision keeps the pages of deleted rows for itself;
    switching it to incremental auto-vacuum takes one VACUUM, which rewrites the whole file
    (a while on a large database) and cannot run inside a transaction. Files made since have
    it from their first connection (webapp.extensions)."""
    if op.get_bind().exec_driver_sql('PRAGMA auto_vacuum').scalar() == INCREMENTAL:
        return
    with op.get_context().autocommit_block():
        op.execute('PRAGMA auto_vacuum=INCREMENTAL')
        op.execute('VACUUM')


def downgrade():
    # The file keeps incremental auto-vacuum: earlier revisions work the same with it.
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_deliveries_run_id'))
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('stored_bytes')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('retention_runs_per_job')
        batch_op.drop_column('retention_days')
