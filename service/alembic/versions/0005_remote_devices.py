"""remote devices: devices, device tokens, agents, measurement queue, result cache, predictors

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BLOB = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")
TS = sa.DateTime(timezone=True)


def _device_fk() -> sa.Column:
    return sa.Column("device_id", sa.Integer(),
                     sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("users", JSON, nullable=True),
        sa.Column("description", JSON, nullable=False),
        sa.Column("measurements_done", sa.Integer(), nullable=False),
        sa.Column("last_heartbeat_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        _device_fk(),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_index("ix_device_tokens_device_id", "device_tokens", ["device_id"])
    op.create_table(
        "device_agents",
        sa.Column("id", sa.Integer(), primary_key=True),
        _device_fk(),
        sa.Column("agent_key", sa.String(64), nullable=False, unique=True),
        sa.Column("description", JSON, nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.Column("measurements_done", sa.Integer(), nullable=False),
    )
    op.create_index("ix_device_agents_device_id", "device_agents", ["device_id"])
    op.create_table(
        "device_measurements",
        sa.Column("id", sa.Integer(), primary_key=True),
        _device_fk(),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.String(32), nullable=True),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("models", BLOB, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index("ix_device_measurements_queue", "device_measurements",
                    ["device_id", "status", "id"])
    op.create_table(
        "device_results",
        _device_fk(),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("result", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "cache_key"),
    )
    op.create_table(
        "device_predictors",
        _device_fk(),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("table", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "key"),
    )


def downgrade() -> None:
    for table in ("device_predictors", "device_results", "device_measurements",
                  "device_agents", "device_tokens", "devices"):
        op.drop_table(table)
