"""A job's own webhook_url has its attempts logged too: an attempt's webhook may be none

Revision ID: f3a4b5c6d7e8
Revises: e0a1b2c3d4e5
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f3a4b5c6d7e8'
down_revision = 'e0a1b2c3d4e5'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.alter_column('webhook_id', existing_type=sa.Integer(), nullable=True)


def downgrade():
    op.execute("DELETE FROM webhook_deliveries WHERE webhook_id IS NULL")
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.alter_column('webhook_id', existing_type=sa.Integer(), nullable=False)
