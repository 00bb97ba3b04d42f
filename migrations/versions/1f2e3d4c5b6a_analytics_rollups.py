"""Analytics rollups per day

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


def upgrade():
    pass


def downgrade():
    pass
