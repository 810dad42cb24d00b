"""hypervolume reference: where the job's fixed reference point came from, and the true
front's hypervolume against it (for the normalized value) when the tables give one

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("hv_reference_source", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hv_true_front", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("hv_true_front")
        batch.drop_column("hv_reference_source")
