"""tagging: entities, article_entities, mention evidence, per-source tag counts

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('entities',
    sa.Column('id', Id, autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('canonical', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entities')),
    sa.UniqueConstraint('kind', 'canonical', name=op.f('uq_entities_kind_canonical'))
    )
    op.create_table('article_entities',
    sa.Column('article_id', Id, nullable=False),
    sa.Column('entity_id', Id, nullable=False),
    sa.Column('mentions', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_article_entities_article_id_articles'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['entity_id'], ['entities.id'], name=op.f('fk_article_entities_entity_id_entities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('article_id', 'entity_id', name=op.f('pk_article_entities'))
    )
    op.create_index(op.f('ix_article_entities_entity_id'), 'article_entities', ['entity_id'], unique=False)
    with op.batch_alter_table('mentions') as batch:
        batch.add_column(sa.Column('field', sa.String(length=10), server_default='text', nullable=False))
        batch.add_column(sa.Column('section', sa.String(length=10), nullable=True))
        batch.add_column(sa.Column('weight', sa.Float(), nullable=True))
    with op.batch_alter_table('source_runs') as batch:
        batch.add_column(sa.Column('tagged', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('relevant', sa.Integer(), server_default='0', nullable=False))
    op.create_index(op.f('ix_articles_relevant'), 'articles', ['relevant'], unique=False)
    op.create_index(op.f('ix_articles_tagger_version'), 'articles', ['tagger_version'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_articles_tagger_version'), table_name='articles')
    op.drop_index(op.f('ix_articles_relevant'), table_name='articles')
    with op.batch_alter_table('source_runs') as batch:
        batch.drop_column('relevant')
        batch.drop_column('tagged')
    with op.batch_alter_table('mentions') as batch:
        batch.drop_column('weight')
        batch.drop_column('section')
        batch.drop_column('field')
    op.drop_index(op.f('ix_article_entities_entity_id'), table_name='article_entities')
    op.drop_table('article_entities')
    op.drop_table('entities')
