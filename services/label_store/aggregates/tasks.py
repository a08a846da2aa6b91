"""Tasks: declarations (a prototype's classes, attributes, labels per sample) and queue counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L

from label_store.db import DONE, LABEL, REVIEW, queue_items, samples, suite_cases
from label_store.db import tasks as tasks_t
from label_store.schema import SchemaError, validate_task
from label_store.tx import StoreError, Transactions, set_time


@dataclass(frozen=True)
class TaskCounts:
    queue_depth: int
    review_depth: int
    leased: int
    done: int


class Tasks:
    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def load(self, conn: Connection, name: str) -> L.Task:
        """The task, read in the caller's transaction; NOT_FOUND names the known tasks."""
        row = conn.execute(sa.select(tasks_t.c.proto).where(tasks_t.c.name == name)).first()
        if row is None:
            known = [r[0] for r in conn.execute(sa.select(tasks_t.c.name).order_by(tasks_t.c.name))]
            raise StoreError("NOT_FOUND", f"unknown task {name!r}; known: {', '.join(known) or 'none'}")
        return L.Task.FromString(row[0])

    def upsert(self, task: L.Task) -> tuple[L.Task, bool]:
        try:
            validate_task(task)
        except SchemaError as exc:
            raise StoreError("INVALID_ARGUMENT", str(exc)) from None

        def work(conn: Connection):
            now = self.tx.now_us()
            row = conn.execute(sa.select(tasks_t.c.proto, tasks_t.c.created_at_us).where(tasks_t.c.name == task.name)).first()
            stored = L.Task()
            stored.CopyFrom(task)
            required = max(task.labels_per_sample, 1)
            if row is not None:
                old = L.Task.FromString(row[0])
                if old.prototype != task.prototype:
                    raise StoreError("FAILED_PRECONDITION", f"task.prototype: task {task.name} is {C.TaskPrototype.Name(old.prototype)}; its labels would no longer fit (declare a new task instead)")
                set_time(stored.created_at, row[1])
                conn.execute(tasks_t.update().where(tasks_t.c.name == task.name).values(proto=stored.SerializeToString(), labels_per_sample=required, updated_at_us=now))
                conn.execute(queue_items.update().where(queue_items.c.task == task.name, queue_items.c.queue == LABEL, queue_items.c.labels_done == 0).values(labels_required=required))
                return stored, False
            set_time(stored.created_at, now)
            conn.execute(tasks_t.insert().values(name=task.name, labels_per_sample=required, proto=stored.SerializeToString(), created_at_us=now, updated_at_us=now))
            # Every sample already registered joins the new task's queue, except unit-test cases:
            # no dataset takes them (no train/test leakage), so their labels would be wasted.
            select = sa.select(sa.literal(task.name), samples.c.sample_id, samples.c.priority, sa.literal(LABEL), sa.literal(0), sa.literal(required), sa.literal(0), sa.false(), sa.literal(0), sa.literal(now)).where(
                ~sa.exists().where(suite_cases.c.sample_id == samples.c.sample_id)
            )
            conn.execute(queue_items.insert().from_select(["task", "sample_id", "priority", "queue", "lease_expires_us", "labels_required", "labels_done", "disagreement", "resolution", "enqueued_at_us"], select))
            return stored, True

        return self.tx.run(work)

    def ensure(self, declared: Iterable[L.Task]) -> list[str]:
        """Create the tasks that do not exist yet (start-up seeding); returns the names created."""
        with self.tx.connect() as conn:
            existing = {r[0] for r in conn.execute(sa.select(tasks_t.c.name))}
        return [t.name for t in declared if t.name not in existing and self.upsert(t)[1]]

    def list(self) -> list[L.Task]:
        with self.tx.connect() as conn:
            return [L.Task.FromString(r[0]) for r in conn.execute(sa.select(tasks_t.c.proto).order_by(tasks_t.c.name))]

    def get(self, name: str) -> tuple[L.Task, TaskCounts]:
        with self.tx.connect() as conn:
            task = self.load(conn, name)
        return task, self.counts(name)

    def counts(self, name: str) -> TaskCounts:
        now = self.tx.now_us()
        q = queue_items.c
        free = sa.case((q.lease_expires_us < now, 1), else_=0)
        query = sa.select(q.queue, sa.func.count(), sa.func.sum(free)).where(q.task == name).group_by(q.queue)
        with self.tx.connect() as conn:
            rows = {r[0]: (int(r[1]), int(r[2] or 0)) for r in conn.execute(query)}
        label, review = rows.get(LABEL, (0, 0)), rows.get(REVIEW, (0, 0))
        return TaskCounts(queue_depth=label[1], review_depth=review[1], leased=(label[0] - label[1]) + (review[0] - review[1]), done=rows.get(DONE, (0, 0))[0])
