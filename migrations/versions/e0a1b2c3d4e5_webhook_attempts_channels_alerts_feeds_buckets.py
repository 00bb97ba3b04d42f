"""Webhook attempts keep their timing; channels, alert rules, job feeds and buckets

Revision ID: e0a1b2c3d4e5
Revises: d9e3f4a5b6c7
Create Date: 2026-12-01 16:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e0a1b2c3d4e5'
down_revision = 'd9e3f4a5b6c7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_secret_encrypted', sa.Text(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alerts', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('feed_token_encrypted', sa.Text(), nullable=True))
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('duration_ms', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('response_excerpt', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('delivery_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_webhook_deliveries_delivery_id', ['delivery_id'])
        batch_op.create_foreign_key(
            'fk_webhook_deliveries_delivery_id', 'deliveries', ['delivery_id'], ['id'],
            ondelete='SET NULL',
        )
    op.create_table(
        'channels',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=40), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('url_encrypted', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_sent_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('public_id'),
    )
    op.create_index('ix_channels_project_id', 'channels', ['project_id'])
    op.create_table(
        'buckets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('project_id', sa.Integer(), nullable=False),
        sa.Column('endpoint', sa.String(length=2000), nullable=True),
        sa.Column('region', sa.String(length=64), nullable=True),
        sa.Column('bucket', sa.String(length=255), nullable=False),
        sa.Column('prefix', sa.String(length=500), nullable=False),
        sa.Column('access_key', sa.String(length=255), nullable=False),
        sa.Column('secret_key_encrypted', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_push_at', sa.DateTime(), nullable=True),
        sa.Column('last_push_key', sa.String(length=1000), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('project_id'),
    )


def downgrade():
    op.drop_table('buckets')
    op.drop_index('ix_channels_project_id', table_name='channels')
    op.drop_table('channels')
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_constraint('fk_webhook_deliveries_delivery_id', type_='foreignkey')
        batch_op.drop_index('ix_webhook_deliveries_delivery_id')
        batch_op.drop_column('delivery_id')
        batch_op.drop_column('response_excerpt')
        batch_op.drop_column('duration_ms')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('feed_token_encrypted')
        batch_op.drop_column('alerts')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_column('webhook_secret_encrypted')
