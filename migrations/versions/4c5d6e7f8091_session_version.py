"""A user's session version

Nothing to change in the schema: users.session_token (since 77c64f88428f) already is the
per-user session version. It is part of every session and remember-me cookie (User.get_id)
and checked on each request, so rotating it on sign-out (and on a password change) ends
every copy of the person's sessions. The revision stays so the chain keeps its order.

Revision ID: 4c5d6e7f8091
Revises: 3b4c5d6e7f80
Create Date: 2026-12-01 17:30:00.000000

"""
# revision identifiers, used by Alembic.
revision = '4c5d6e7f8091'
down_revision = '3b4c5d6e7f80'
branch_labels = None
depends_on = None


def upgrade():
    pass  # users.session_token serves: see above


def downgrade():
    pass
