"""At most one queued or running run per job; runs count their queue attempts

Revision ID: b7c1d2e3f4a5
Revises: f2e0a9193977
Create Date: 2026-12-01 14:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7c1d2e3f4a5'
down_revision = 'f2e0a9193977'
branch_labels = None
depends_on = None

IN_PROGRESS = "status IN ('queued', 'running')"


def upgrade():
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='1', nullable=False))
    # Before the index can exist, a job may hold only its newest in-progress run; older ones
    # (left by the check-then-insert race this index closes) are failed with a reason.
    op.execute(
        f"""
        UPDATE runs SET status = 'failed',
            error = 'Failed on upgrade: a newer run of this job was already in progress.'
        WHERE job_id IS NOT NULL AND {IN_PROGRESS}
          AND id < (SELECT MAX(r.id) FROM runs r WHERE r.job_id = runs.job_id AND r.{IN_PROGRESS})
        """
    )
    op.create_index(
        'uq_runs_job_in_progress', 'runs', ['job_id'], unique=True,
        sqlite_where=sa.text(IN_PROGRESS), postgresql_where=sa.text(IN_PROGRESS),
    )


def downgrade():
    op.drop_index('uq_runs_job_in_progress', table_name='runs')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('attempts')
