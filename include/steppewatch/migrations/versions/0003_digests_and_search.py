"""digests; full-text search index on PostgreSQL

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
Json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
# the expression steppewatch.analysis searches with: titles and texts, the 'simple' configuration
FTS_EXPRESSION = "to_tsvector('simple', coalesce(title, '') || ' ' || text)"


def upgrade() -> None:
    op.create_table('digests',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('run_id', Id, nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stories', sa.Integer(), nullable=False),
    sa.Column('sections', Json, nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_digests_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digests')),
    sa.UniqueConstraint('run_id', name=op.f('uq_digests_run_id'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"CREATE INDEX ix_articles_fulltext ON articles USING gin ({FTS_EXPRESSION})")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_articles_fulltext")
    op.drop_table('digests')
