"""The relational schema and engine set-up: one code path for SQLite (embedded default) and
PostgreSQL (production). Alembic migrations (label_store/migrations) create and evolve the
schema; `tests/unit/label_store` checks that they produce exactly these tables.

Portable choices, so both databases behave the same:
- times are integer microseconds since the epoch (no timezone or precision differences);
- protobuf messages are stored as their serialized bytes next to the indexed columns;
- row claims (leases) are compare-and-set UPDATEs (`WHERE lease_expires_us < now`), correct on
  both; PostgreSQL additionally skips locked candidates (SKIP LOCKED) to reduce contention,
  SQLite serialises writers (`BEGIN IMMEDIATE`, WAL, busy timeout).
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

metadata = sa.MetaData()

samples = sa.Table(
    "samples",
    metadata,
    sa.Column("sample_id", sa.String(64), primary_key=True),
    sa.Column("vehicle_id", sa.String(200), nullable=False, index=True),
    sa.Column("trigger_id", sa.String(200), nullable=False, index=True),
    sa.Column("trigger_version", sa.BigInteger, nullable=False),
    sa.Column("captured_at_us", sa.BigInteger, nullable=False, index=True),
    sa.Column("priority", sa.Float, nullable=False),
    sa.Column("registered_at_us", sa.BigInteger, nullable=False),
    sa.Column("proto", sa.LargeBinary, nullable=False),  # labels.v1.Sample without derived fields
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("labels_per_sample", sa.Integer, nullable=False),
    sa.Column("proto", sa.LargeBinary, nullable=False),  # labels.v1.Task
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
)

# One row per (task, sample): the queue item. queue is LABEL, REVIEW or DONE; an item is
# leased while lease_expires_us >= now, so an expired lease frees the item with no sweeper.
LABEL, REVIEW, DONE = "label", "review", "done"
queue_items = sa.Table(
    "queue_items",
    metadata,
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
    sa.Column("resolution", sa.Integer, nullable=False),  # labels.v1.Resolution
    sa.Column("final_label_id", sa.String(64), nullable=True),
    sa.Column("enqueued_at_us", sa.BigInteger, nullable=False),
    sa.Column("resolved_at_us", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("task", "sample_id", name="uq_queue_items_task_sample"),
    sa.Index("ix_queue_items_next", "task", "queue", "priority", "id"),
    sa.Index("ix_queue_items_sample", "sample_id"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("lease_id", sa.String(36), primary_key=True),
    sa.Column("item_id", sa.Integer, sa.ForeignKey("queue_items.id"), nullable=False, index=True),
    sa.Column("labeller_id", sa.String(200), nullable=False),
    sa.Column("review", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # active, fulfilled, released
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    sa.Column("label_id", sa.String(64), nullable=True),
    sa.Column("reason", sa.String(500), nullable=True),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("label_id", sa.String(64), primary_key=True),
    sa.Column("sample_id", sa.String(64), sa.ForeignKey("samples.sample_id"), nullable=False),
    sa.Column("task", sa.String(100), nullable=False),
    sa.Column("labeller_id", sa.String(200), nullable=False),
    sa.Column("lease_id", sa.String(36), nullable=False),
    sa.Column("review", sa.Boolean, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("proto", sa.LargeBinary, nullable=False),  # labels.v1.Label
    sa.Index("ix_labels_sample_task", "sample_id", "task"),
)

# Predictions from inference.results.v1 (pre-labels; also what EvaluateSuites uses when the
# caller supplies none). No foreign key: a result may arrive before its sample.
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("sample_id", sa.String(64), primary_key=True),
    sa.Column("task", sa.String(100), primary_key=True),
    sa.Column("model_name", sa.String(100), primary_key=True),
    sa.Column("model_version", sa.BigInteger, primary_key=True),
    sa.Column("entropy", sa.Float, nullable=False),
    sa.Column("inferred_at_us", sa.BigInteger, nullable=False),
    sa.Column("proto", sa.LargeBinary, nullable=False),  # common.v1.TaskPrediction
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("manifest_key", sa.String(500), nullable=False),
    sa.Column("manifest_sha256", sa.String(64), nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
    sa.Column("proto", sa.LargeBinary, nullable=False),  # labels.v1.DatasetVersion
)

# The frozen selection of a dataset version: enough to regenerate its manifest bit for bit.
dataset_items = sa.Table(
    "dataset_items",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("sample_id", sa.String(64), primary_key=True),
    sa.Column("split", sa.String(8), nullable=False),
    sa.Column("label_ids", sa.Text, nullable=False),  # JSON {task: label_id}
    sa.ForeignKeyConstraint(["name", "version"], ["datasets.name", "datasets.version"]),
)

suites = sa.Table(
    "suites",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("task", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("source_yaml", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("updated_at_us", sa.BigInteger, nullable=False),
)

suite_cases = sa.Table(
    "suite_cases",
    metadata,
    sa.Column("suite", sa.String(200), primary_key=True),
    sa.Column("version", sa.BigInteger, primary_key=True),
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("sample_id", sa.String(64), nullable=False, index=True),
    sa.Column("predicate", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("added_at_us", sa.BigInteger, nullable=False),
    sa.ForeignKeyConstraint(["suite", "version"], ["suites.name", "suites.version"]),
)

suite_results = sa.Table(
    "suite_results",
    metadata,
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

case_results = sa.Table(
    "case_results",
    metadata,
    sa.Column("result_id", sa.Integer, sa.ForeignKey("suite_results.id"), primary_key=True),
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("sample_id", sa.String(64), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)

# Transactional outbox: events are written in the same transaction as the change they announce
# and published to Kafka afterwards, so an acknowledged change is never missing its event.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("created_at_us", sa.BigInteger, nullable=False),
)


def now_us() -> int:
    return int(time.time() * 1_000_000)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str, pool_size: int = 20) -> Engine:
    """An engine for `url`, tuned per database (the only dialect-specific code besides SKIP LOCKED)."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=pool_size, max_overflow=pool_size)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN IMMEDIATE
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode across process crashes
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:
            # Take the write lock up front: a deferred transaction that reads and then writes can
            # fail with SQLITE_BUSY when another writer got in between; IMMEDIATE waits instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def migrate(engine: Engine) -> str:
    """Apply every alembic migration (idempotent); returns the head revision."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # replicas starting together migrate one at a time
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(4242001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        return MigrationContext.configure(conn).get_current_revision() or ""
