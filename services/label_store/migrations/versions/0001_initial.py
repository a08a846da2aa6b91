"""Initial label-store schema: samples, tasks, queues, leases, labels, predictions, datasets,
suites, suite results and the event outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "samples",
        sa.Column("sample_id", sa.String(64), primary_key=True),
        sa.Column("vehicle_id", sa.String(200), nullable=False),
        sa.Column("trigger_id", sa.String(200), nullable=False),
        sa.Column("trigger_version", sa.BigInteger, nullable=False),
        sa.Column("captured_at_us", sa.BigInteger, nullable=False),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("registered_at_us", sa.BigInteger, nullable=False),
        sa.Column("proto", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_samples_vehicle_id", "samples", ["vehicle_id"])
    op.create_index("ix_samples_trigger_id", "samples", ["trigger_id"])
    op.create_index("ix_samples_captured_at_us", "samples", ["captured_at_us"])
    op.create_table(
        "tasks",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("labels_per_sample", sa.Integer, nullable=False),
        sa.Column("proto", sa.LargeBinary, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "queue_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task", sa.String(100), sa.ForeignKey("tasks.name"), nullable=False),
        sa.Column("sample_id", sa.String(64), sa.ForeignKey("samples.sample_id"), nullable=False),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("queue", sa.String(8), nullable=False),
        sa.Column("lease_id", sa.String(36), nullable=True),
        sa.Column("lease_expires_us", sa.BigInteger, nullable=False),
        sa.Column("labels_required", sa.Integer, nullable=False),
        sa.Column("labels_done", sa.Integer, nullable=False),
        sa.Column("disagreement", sa.Boolean, nullable=False),
        sa.Column("resolution", sa.Integer, nullable=False),
        sa.Column("final_label_id", sa.String(64), nullable=True),
        sa.Column("enqueued_at_us", sa.BigInteger, nullable=False),
        sa.Column("resolved_at_us", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("task", "sample_id", name="uq_queue_items_task_sample"),
    )
    op.create_index("ix_queue_items_next", "queue_items", ["task", "queue", "priority", "id"])
    op.create_index("ix_queue_items_sample", "queue_items", ["sample_id"])
    op.create_table(
        "leases",
        sa.Column("lease_id", sa.String(36), primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("queue_items.id"), nullable=False),
        sa.Column("labeller_id", sa.String(200), nullable=False),
        sa.Column("review", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("label_id", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
    )
    op.create_index("ix_leases_item_id", "leases", ["item_id"])
    op.create_table(
        "labels",
        sa.Column("label_id", sa.String(64), primary_key=True),
        sa.Column("sample_id", sa.String(64), sa.ForeignKey("samples.sample_id"), nullable=False),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("labeller_id", sa.String(200), nullable=False),
        sa.Column("lease_id", sa.String(36), nullable=False),
        sa.Column("review", sa.Boolean, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("proto", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_labels_sample_task", "labels", ["sample_id", "task"])
    op.create_table(
        "predictions",
        sa.Column("sample_id", sa.String(64), primary_key=True),
        sa.Column("task", sa.String(100), primary_key=True),
        sa.Column("model_name", sa.String(100), primary_key=True),
        sa.Column("model_version", sa.BigInteger, primary_key=True),
        sa.Column("entropy", sa.Float, nullable=False),
        sa.Column("inferred_at_us", sa.BigInteger, nullable=False),
        sa.Column("proto", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("manifest_key", sa.String(500), nullable=False),
        sa.Column("manifest_sha256", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("proto", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "dataset_items",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("sample_id", sa.String(64), primary_key=True),
        sa.Column("split", sa.String(8), nullable=False),
        sa.Column("label_ids", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["name", "version"], ["datasets.name", "datasets.version"]),
    )
    op.create_table(
        "suites",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("source_yaml", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "suite_cases",
        sa.Column("suite", sa.String(200), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("predicate", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("added_at_us", sa.BigInteger, nullable=False),
        sa.ForeignKeyConstraint(["suite", "version"], ["suites.name", "suites.version"]),
    )
    op.create_index("ix_suite_cases_sample_id", "suite_cases", ["sample_id"])
    op.create_table(
        "suite_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("suite_version", sa.BigInteger, nullable=False),
        sa.Column("model_name", sa.String(100), nullable=False),
        sa.Column("model_version", sa.BigInteger, nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("evaluated_at_us", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("suite", "suite_version", "model_name", "model_version", name="uq_suite_results_run"),
    )
    op.create_table(
        "case_results",
        sa.Column("result_id", sa.Integer, sa.ForeignKey("suite_results.id"), primary_key=True),
        sa.Column("case_id", sa.String(64), primary_key=True),
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("outbox", "case_results", "suite_results", "suite_cases", "suites", "dataset_items", "datasets", "predictions", "labels", "leases", "queue_items", "tasks", "samples"):
        op.drop_table(table)
