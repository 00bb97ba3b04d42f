"""A user's session version

Revision ID: 4c5d6e7f8091
Revises: 3b4c5d6e7f80
Create Date: 2026-12-01 17:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4c5d6e7f8091'
down_revision = '3b4c5d6e7f80'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
