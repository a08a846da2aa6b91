"""The label store's logic over SQLAlchemy Core: one code path for SQLite and PostgreSQL.

Every public method is synchronous and runs in its own transaction (the gRPC servicer calls it on
a worker thread). Failures a caller can act on raise StoreError with the gRPC status code name and
a message naming the offending field or object.

Queue semantics (docs/label-store.md):
- each (task, sample) is one queue item in queue "label", "review" or "done";
- `next_task` claims the highest-priority free item with a compare-and-set UPDATE (free = its
  lease expired: `lease_expires_us < now`), so no item is ever under two live leases and an
  expired lease needs no sweeper to return its item;
- `submit_label` is idempotent by (sample, task, labeller, idempotency_key); a second label on a
  fulfilled lease is ALREADY_EXISTS, a label on an expired or released lease FAILED_PRECONDITION;
- with `labels_per_sample` >= 2 the labels are compared: agreement or a strict majority resolves
  the item, otherwise it moves to the review queue where one reviewer's label decides.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from longtail import predicates, topics
from longtail.common.v1 import common_pb2 as C
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.inference.v1 import events_pb2 as inference_events
from longtail.labels.v1 import events_pb2 as E
from longtail.labels.v1 import labels_pb2 as L

from label_store import agreement, datasets, suites
from label_store.db import (
    case_results,
    dataset_items,
    is_sqlite,
    labels,
    leases,
    outbox,
    predictions,
    queue_items,
    samples,
    suite_cases,
    suite_results,
)
from label_store.db import datasets as datasets_t
from label_store.db import suites as suites_t
from label_store.db import tasks as tasks_t
from label_store.schema import SchemaError, validate_annotation, validate_task

SAMPLE_ID = re.compile(r"^[0-9a-f]{64}$")
DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
LABEL, REVIEW, DONE = "label", "review", "done"
MIN_LEASE_S, MAX_LEASE_S = 0.05, 24 * 3600.0
MAX_ID = 200
CANDIDATES = 8
MAX_FILTER_IDS = 10_000  # sample ids one filter may name (one SQL IN list)


class StoreError(Exception):
    """A request the store refuses; `code` is a grpc.StatusCode name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TaskCounts:
    queue_depth: int
    review_depth: int
    leased: int
    done: int


def _ts(message, micros: int) -> None:
    message.FromMicroseconds(int(micros))


def _id(value: str, field: str) -> str:
    if not value:
        raise StoreError("INVALID_ARGUMENT", f"{field} is empty")
    if len(value) > MAX_ID:
        raise StoreError("INVALID_ARGUMENT", f"{field} is longer than {MAX_ID} characters")
    return value


def label_id(sample_id: str, task: str, labeller_id: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{sample_id}/{task}/{labeller_id}/{idempotency_key}".encode()).hexdigest()


def sample_from_snapshot(event: fleet_events.SnapshotUploaded) -> L.Sample:
    """A SnapshotUploaded event as a sample (provenance, object location, the car's detections)."""
    s = L.Sample(sample_id=event.snapshot_id, bucket=event.bucket, object_key=event.object_key,
                 content_type=event.content_type, size_bytes=event.size_bytes, priority=float(event.priority))
    p = s.provenance
    p.vehicle_id, p.frame_id, p.trigger_id, p.trigger_version, p.fire_id = (
        event.vehicle_id, event.frame_id, event.trigger_id, event.trigger_version, event.fire_id)
    if event.HasField("captured_at"):
        p.captured_at.CopyFrom(event.captured_at)
    if event.metadata.HasField("ego"):
        s.ego.CopyFrom(event.metadata.ego)
    s.car_detections.extend(event.metadata.detections)
    return s


def validate_sample(sample: L.Sample) -> None:
    if not SAMPLE_ID.match(sample.sample_id):
        raise StoreError("INVALID_ARGUMENT", f"sample.sample_id {sample.sample_id[:80]!r} is not a lowercase sha256 hex digest")
    if not sample.object_key:
        raise StoreError("INVALID_ARGUMENT", "sample.object_key is empty")
    if sample.ByteSize() > 1024 * 1024:
        raise StoreError("INVALID_ARGUMENT", f"sample: {sample.ByteSize()} bytes exceeds the limit of 1048576")


class LabelStore:
    def __init__(self, engine: Engine, objects=None, clock: Callable[[], float] = time.time, default_lease_s: float = 600.0) -> None:
        self.engine = engine
        self.objects = objects  # longtail.storage.ObjectStore: dataset manifests
        self.clock = clock
        self.default_lease_s = default_lease_s
        self.sqlite = is_sqlite(engine)

    def now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def _tx(self, work: Callable[[Connection], object], retries: int = 5):
        """Run `work` in a transaction; retry on a lost race (unique key) or a transient lock error."""
        for attempt in range(retries):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except (IntegrityError, OperationalError) as exc:
                transient = isinstance(exc, IntegrityError) or "locked" in str(exc) or "deadlock" in str(exc).lower() or "could not serialize" in str(exc)
                if not transient or attempt == retries - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def _emit(self, conn: Connection, topic: topics.Topic, key: str, value) -> None:
        conn.execute(outbox.insert().values(topic=topic.name, key=key, value=value.SerializeToString(), created_at_us=self.now_us()))

    # -- tasks ----------------------------------------------------------------------------------

    def _task(self, conn: Connection, name: str) -> L.Task:
        row = conn.execute(sa.select(tasks_t.c.proto).where(tasks_t.c.name == name)).first()
        if row is None:
            known = [r[0] for r in conn.execute(sa.select(tasks_t.c.name).order_by(tasks_t.c.name))]
            raise StoreError("NOT_FOUND", f"unknown task {name!r}; known: {', '.join(known) or 'none'}")
        return L.Task.FromString(row[0])

    def upsert_task(self, task: L.Task) -> tuple[L.Task, bool]:
        try:
            validate_task(task)
        except SchemaError as exc:
            raise StoreError("INVALID_ARGUMENT", str(exc)) from None

        def work(conn: Connection):
            now = self.now_us()
            row = conn.execute(sa.select(tasks_t.c.proto, tasks_t.c.created_at_us).where(tasks_t.c.name == task.name)).first()
            stored = L.Task()
            stored.CopyFrom(task)
            required = max(task.labels_per_sample, 1)
            if row is not None:
                old = L.Task.FromString(row[0])
                if old.prototype != task.prototype:
                    raise StoreError("FAILED_PRECONDITION", f"task.prototype: task {task.name} is {C.TaskPrototype.Name(old.prototype)}; "
                                     "its labels would no longer fit (declare a new task instead)")
                _ts(stored.created_at, row[1])
                conn.execute(tasks_t.update().where(tasks_t.c.name == task.name).values(
                    proto=stored.SerializeToString(), labels_per_sample=required, updated_at_us=now))
                conn.execute(queue_items.update().where(queue_items.c.task == task.name, queue_items.c.queue == LABEL,
                                                        queue_items.c.labels_done == 0).values(labels_required=required))
                return stored, False
            _ts(stored.created_at, now)
            conn.execute(tasks_t.insert().values(name=task.name, labels_per_sample=required, proto=stored.SerializeToString(),
                                                 created_at_us=now, updated_at_us=now))
            # Every sample already registered joins the new task's queue, except unit-test cases:
            # no dataset takes them (no train/test leakage), so their labels would be wasted.
            select = sa.select(sa.literal(task.name), samples.c.sample_id, samples.c.priority, sa.literal(LABEL), sa.literal(0),
                               sa.literal(required), sa.literal(0), sa.false(), sa.literal(0), sa.literal(now)).where(
                ~sa.exists().where(suite_cases.c.sample_id == samples.c.sample_id))
            conn.execute(queue_items.insert().from_select(
                ["task", "sample_id", "priority", "queue", "lease_expires_us", "labels_required", "labels_done", "disagreement",
                 "resolution", "enqueued_at_us"], select))
            return stored, True

        return self._tx(work)

    def ensure_tasks(self, declared: Iterable[L.Task]) -> list[str]:
        """Create the tasks that do not exist yet (start-up seeding); returns the names created."""
        with self.engine.connect() as conn:
            existing = {r[0] for r in conn.execute(sa.select(tasks_t.c.name))}
        return [t.name for t in declared if t.name not in existing and self.upsert_task(t)[1]]

    def list_tasks(self) -> list[L.Task]:
        with self.engine.connect() as conn:
            return [L.Task.FromString(r[0]) for r in conn.execute(sa.select(tasks_t.c.proto).order_by(tasks_t.c.name))]

    def get_task(self, name: str) -> tuple[L.Task, TaskCounts]:
        with self.engine.connect() as conn:
            task = self._task(conn, name)
        return task, self.task_counts(name)

    def task_counts(self, name: str) -> TaskCounts:
        now = self.now_us()
        q = queue_items.c
        free = sa.case((q.lease_expires_us < now, 1), else_=0)
        query = sa.select(q.queue, sa.func.count(), sa.func.sum(free)).where(q.task == name).group_by(q.queue)
        with self.engine.connect() as conn:
            rows = {r[0]: (int(r[1]), int(r[2] or 0)) for r in conn.execute(query)}
        label, review = rows.get(LABEL, (0, 0)), rows.get(REVIEW, (0, 0))
        return TaskCounts(queue_depth=label[1], review_depth=review[1], leased=(label[0] - label[1]) + (review[0] - review[1]), done=rows.get(DONE, (0, 0))[0])

    # -- samples --------------------------------------------------------------------------------

    def register_samples(self, batch: Iterable[L.Sample]) -> list[tuple[L.Sample, bool]]:
        """Idempotent by sample_id (the content hash): (sample, created) per input, in order."""
        batch = list(batch)
        for s in batch:
            validate_sample(s)

        def work(conn: Connection):
            now = self.now_us()
            ids = list({s.sample_id for s in batch})
            existing = {r[0] for r in conn.execute(sa.select(samples.c.sample_id).where(samples.c.sample_id.in_(ids)))}
            task_rows = list(conn.execute(sa.select(tasks_t.c.name, tasks_t.c.labels_per_sample)))
            entropy = {}
            if ids:
                for sid, task, h in conn.execute(sa.select(predictions.c.sample_id, predictions.c.task, sa.func.max(predictions.c.entropy))
                                                 .where(predictions.c.sample_id.in_(ids)).group_by(predictions.c.sample_id, predictions.c.task)):
                    entropy[(sid, task)] = h
            out, created_now = [], set()
            for s in batch:
                if s.sample_id in existing or s.sample_id in created_now:
                    out.append((s, False))
                    continue
                stored = L.Sample()
                stored.CopyFrom(s)
                for f in ("pre_labels", "tasks", "labelled_tasks", "registered_at"):
                    stored.ClearField(f)
                stored.ClearField("pre_label_model")
                p = stored.provenance
                conn.execute(samples.insert().values(
                    sample_id=s.sample_id, vehicle_id=p.vehicle_id, trigger_id=p.trigger_id, trigger_version=p.trigger_version,
                    captured_at_us=p.captured_at.ToMicroseconds() if p.HasField("captured_at") else now, priority=s.priority,
                    registered_at_us=now, proto=stored.SerializeToString()))
                if task_rows:
                    conn.execute(queue_items.insert(), [
                        dict(task=name, sample_id=s.sample_id, priority=s.priority + entropy.get((s.sample_id, name), 0.0), queue=LABEL,
                             lease_expires_us=0, labels_required=required, labels_done=0, disagreement=False, resolution=0, enqueued_at_us=now)
                        for name, required in task_rows])
                _ts(stored.registered_at, now)
                stored.tasks.extend(name for name, _ in task_rows)
                self._emit(conn, topics.SAMPLES_REGISTERED, s.sample_id, E.SampleRegistered(sample=stored))
                created_now.add(s.sample_id)
                out.append((stored, True))
            return out

        return self._tx(work)

    def _decorate(self, conn: Connection, rows) -> list[L.Sample]:
        """Sample rows -> messages with tasks, labelled tasks and latest pre-labels filled in."""
        out = {}
        for sid, proto, registered in rows:
            s = L.Sample.FromString(proto)
            _ts(s.registered_at, registered)
            out[sid] = s
        if not out:
            return []
        q = queue_items.c
        for sid, task, labels_done in conn.execute(sa.select(q.sample_id, q.task, q.labels_done).where(q.sample_id.in_(list(out))).order_by(q.task)):
            out[sid].tasks.append(task)
            if labels_done:
                out[sid].labelled_tasks.append(task)
        p = predictions.c
        for sid, task, name, version, proto in conn.execute(sa.select(p.sample_id, p.task, p.model_name, p.model_version, p.proto)
                                                            .where(p.sample_id.in_(list(out))).order_by(p.model_version)):
            s = out[sid]
            s.pre_labels[task].CopyFrom(C.TaskPrediction.FromString(proto))  # the newest version wins
            s.pre_label_model.name, s.pre_label_model.version = name, version
        return list(out.values())

    def get_sample(self, sample_id: str) -> tuple[L.Sample, list[L.Label], list[L.TaskLabelState]]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(sa.select(samples.c.sample_id, samples.c.proto, samples.c.registered_at_us).where(samples.c.sample_id == sample_id)))
            if not rows:
                raise StoreError("NOT_FOUND", f"no sample {sample_id!r}")
            [sample] = self._decorate(conn, rows)
            found = [L.Label.FromString(r[0]) for r in conn.execute(
                sa.select(labels.c.proto).where(labels.c.sample_id == sample_id).order_by(labels.c.created_at_us, labels.c.label_id))]
            q = queue_items.c
            states = [L.TaskLabelState(task=r.task, labels_required=r.labels_required, labels_done=r.labels_done, in_review=r.queue == REVIEW,
                                       disagreement=r.disagreement, resolution=r.resolution, final_label_id=r.final_label_id or "")
                      for r in conn.execute(sa.select(queue_items).where(q.sample_id == sample_id).order_by(q.task))]
        return sample, found, states

    def _filter(self, f: L.SampleFilter, tasks: list[str], require_done: bool | None):
        """WHERE clauses over `samples` for a SampleFilter; require_done: True=labelled, False=unlabelled."""
        s, q = samples.c, queue_items.c
        where = []
        if f.trigger_ids:
            where.append(s.trigger_id.in_(list(f.trigger_ids)))
        if f.vehicle_ids:
            where.append(s.vehicle_id.in_(list(f.vehicle_ids)))
        if f.sample_ids:
            if len(f.sample_ids) > MAX_FILTER_IDS:
                raise StoreError("INVALID_ARGUMENT", f"filter.sample_ids: {len(f.sample_ids)} ids, at most {MAX_FILTER_IDS}")
            where.append(s.sample_id.in_(list(f.sample_ids)))
        if f.captured.HasField("since"):
            where.append(s.captured_at_us >= f.captured.since.ToMicroseconds())
        if f.captured.HasField("until"):
            where.append(s.captured_at_us < f.captured.until.ToMicroseconds())
        if not f.include_suite_cases:
            where.append(~sa.exists().where(suite_cases.c.sample_id == s.sample_id))
        if require_done is True:
            for task in tasks or [None]:
                cond = [q.sample_id == s.sample_id, q.queue == DONE] + ([q.task == task] if task else [])
                where.append(sa.exists().where(*cond))
        elif require_done is False:
            cond = [q.sample_id == s.sample_id, q.queue != DONE] + ([q.task.in_(tasks)] if tasks else [])
            where.append(sa.exists().where(*cond))
        elif tasks:
            where.append(sa.exists().where(q.sample_id == s.sample_id, q.task.in_(tasks)))
        return where

    def list_samples(self, f: L.SampleFilter, page_size: int = 100, page_token: str = "") -> tuple[list[L.Sample], str]:
        size = min(page_size if page_size > 0 else 100, 1000)
        status = {L.LABEL_STATUS_LABELLED: True, L.LABEL_STATUS_UNLABELLED: False}.get(f.label_status)
        where = self._filter(f, list(f.tasks), status)
        if page_token:
            where.append(samples.c.sample_id > page_token)
        query = sa.select(samples.c.sample_id, samples.c.proto, samples.c.registered_at_us).where(*where).order_by(samples.c.sample_id).limit(size + 1)
        with self.engine.connect() as conn:
            rows = list(conn.execute(query))
            page = self._decorate(conn, rows[:size])
        return page, (rows[size - 1][0] if len(rows) > size else "")

    def record_predictions(self, result: inference_events.InferenceResult) -> int:
        """Store an inference result (idempotent upsert) and reprioritise the queue by uncertainty."""
        if not SAMPLE_ID.match(result.snapshot_id):
            raise StoreError("INVALID_ARGUMENT", f"snapshot_id {result.snapshot_id[:80]!r} is not a sha256 hex digest")
        if not result.model.name or result.model.version <= 0:
            raise StoreError("INVALID_ARGUMENT", "model needs a name and a positive version")

        def work(conn: Connection):
            now = self.now_us()
            p, q = predictions.c, queue_items.c
            base = conn.execute(sa.select(samples.c.priority).where(samples.c.sample_id == result.snapshot_id)).scalar()
            for task, prediction in result.predictions.items():
                key = (p.sample_id == result.snapshot_id, p.task == task, p.model_name == result.model.name, p.model_version == result.model.version)
                conn.execute(predictions.delete().where(*key))
                conn.execute(predictions.insert().values(
                    sample_id=result.snapshot_id, task=task, model_name=result.model.name, model_version=result.model.version,
                    entropy=float(prediction.uncertainty.entropy), inferred_at_us=now, proto=prediction.SerializeToString()))
                if base is not None:
                    conn.execute(queue_items.update().where(q.sample_id == result.snapshot_id, q.task == task, q.queue == LABEL)
                                 .values(priority=base + float(prediction.uncertainty.entropy)))
            return len(result.predictions)

        return self._tx(work)

    # -- labelling queue ------------------------------------------------------------------------

    def next_task(self, task: str, labeller_id: str, lease_s: float | None = None, review: bool = False) -> tuple[L.LabelLease | None, int]:
        _id(labeller_id, "labeller_id")
        lease_s = self.default_lease_s if lease_s is None or lease_s == 0 else lease_s
        if not MIN_LEASE_S <= lease_s <= MAX_LEASE_S:
            raise StoreError("INVALID_ARGUMENT", f"lease_duration: {lease_s}s is not within [{MIN_LEASE_S}, {MAX_LEASE_S:.0f}] seconds")
        wanted = REVIEW if review else LABEL
        q = queue_items.c

        def work(conn: Connection):
            task_msg = self._task(conn, task)
            now = self.now_us()
            mine = sa.exists().where(labels.c.sample_id == q.sample_id, labels.c.task == q.task, labels.c.labeller_id == labeller_id)
            candidates = (sa.select(q.id).where(q.task == task, q.queue == wanted, q.lease_expires_us < now, ~mine)
                          .order_by(q.priority.desc(), q.id).limit(CANDIDATES))
            if not self.sqlite:  # PostgreSQL: don't queue up behind rows another labeller is claiming
                candidates = candidates.with_for_update(skip_locked=True, of=queue_items)
            lease_id = str(uuid.uuid4())
            expires = now + int(lease_s * 1_000_000)
            for (item_id,) in list(conn.execute(candidates)):
                # Compare-and-set: only an item whose lease (if any) has expired can be claimed.
                claimed = conn.execute(queue_items.update().where(q.id == item_id, q.queue == wanted, q.lease_expires_us < now)
                                       .values(lease_id=lease_id, lease_expires_us=expires)).rowcount
                if claimed != 1:
                    continue
                conn.execute(leases.update().where(leases.c.item_id == item_id, leases.c.state == "active").values(state="expired"))
                conn.execute(leases.insert().values(lease_id=lease_id, item_id=item_id, labeller_id=labeller_id, review=review,
                                                    state="active", created_at_us=now, expires_at_us=expires))
                return self._lease_message(conn, task_msg, item_id, lease_id, labeller_id, expires, review), self._depth(conn, task, wanted, now)
            return None, self._depth(conn, task, wanted, now)

        return self._tx(work)

    def _depth(self, conn: Connection, task: str, queue: str, now: int) -> int:
        q = queue_items.c
        return conn.execute(sa.select(sa.func.count()).select_from(queue_items).where(q.task == task, q.queue == queue, q.lease_expires_us < now)).scalar_one()

    def _lease_message(self, conn: Connection, task: L.Task, item_id: int, lease_id: str, labeller_id: str, expires: int, review: bool) -> L.LabelLease:
        sample_id = conn.execute(sa.select(queue_items.c.sample_id).where(queue_items.c.id == item_id)).scalar_one()
        rows = list(conn.execute(sa.select(samples.c.sample_id, samples.c.proto, samples.c.registered_at_us).where(samples.c.sample_id == sample_id)))
        [sample] = self._decorate(conn, rows)
        lease = L.LabelLease(lease_id=lease_id, labeller_id=labeller_id, task=task.name, sample=sample, review=review)
        _ts(lease.expires_at, expires)
        if task.name in sample.pre_labels:
            lease.pre_label.CopyFrom(sample.pre_labels[task.name])
        if review:
            lease.previous_labels.extend(L.Label.FromString(r[0]) for r in conn.execute(
                sa.select(labels.c.proto).where(labels.c.sample_id == sample_id, labels.c.task == task.name).order_by(labels.c.created_at_us)))
        return lease

    def submit_label(self, lease_id: str, idempotency_key: str, label: L.Label) -> tuple[L.Label, bool]:
        _id(lease_id, "lease_id")
        _id(idempotency_key, "idempotency_key")
        q = queue_items.c

        def work(conn: Connection):
            now = self.now_us()
            lease = conn.execute(sa.select(leases).where(leases.c.lease_id == lease_id)).first()
            if lease is None:
                raise StoreError("NOT_FOUND", f"no lease {lease_id!r}")
            item = conn.execute(sa.select(queue_items).where(q.id == lease.item_id)).one()
            lid = label_id(item.sample_id, item.task, lease.labeller_id, idempotency_key)
            existing = conn.execute(sa.select(labels.c.proto).where(labels.c.label_id == lid)).scalar()
            if existing is not None:  # a retry: same answer, nothing changes
                return L.Label.FromString(existing), True
            if label.labeller_id and label.labeller_id != lease.labeller_id:
                raise StoreError("PERMISSION_DENIED", f"lease {lease_id} belongs to labeller {lease.labeller_id!r}, not {label.labeller_id!r}")
            if label.sample_id and label.sample_id != item.sample_id:
                raise StoreError("INVALID_ARGUMENT", f"label.sample_id: {label.sample_id!r} is not the leased sample {item.sample_id}")
            if label.task and label.task != item.task:
                raise StoreError("INVALID_ARGUMENT", f"label.task: {label.task!r} is not the leased task {item.task!r}")
            if lease.state == "fulfilled":
                raise StoreError("ALREADY_EXISTS", f"lease {lease_id} was already fulfilled by label {lease.label_id}; "
                                 "a retry must reuse its idempotency_key")
            if lease.state == "released":
                raise StoreError("FAILED_PRECONDITION", f"lease {lease_id} was released; get a new task")
            if lease.expires_at_us < now or item.lease_id != lease_id:
                raise StoreError("FAILED_PRECONDITION", f"lease {lease_id} expired at {lease.expires_at_us / 1e6:.3f} "
                                 f"(now {now / 1e6:.3f}); the item went back to the queue — get a new task")
            task = self._task(conn, item.task)
            try:
                validate_annotation(task, label.annotation)
            except SchemaError as exc:
                raise StoreError("INVALID_ARGUMENT", str(exc)) from None
            stored = L.Label()
            stored.CopyFrom(label)
            stored.label_id, stored.sample_id, stored.task, stored.labeller_id = lid, item.sample_id, item.task, lease.labeller_id
            _ts(stored.created_at, now)
            stored.labelling_time.FromMicroseconds(max(now - lease.created_at_us, 0))
            # Claim the item back from the lease atomically: if it expired and was re-leased
            # concurrently (PostgreSQL), this matches no row and the label is refused.
            values = dict(lease_id=None, lease_expires_us=0, labels_done=item.labels_done + 1)
            values.update(self._resolve(conn, item, stored, lease.review, now))
            done = conn.execute(queue_items.update().where(q.id == item.id, q.lease_id == lease_id, q.lease_expires_us >= now).values(**values)).rowcount
            if done != 1:
                raise StoreError("FAILED_PRECONDITION", f"lease {lease_id} expired; get a new task")
            conn.execute(labels.insert().values(label_id=lid, sample_id=item.sample_id, task=item.task, labeller_id=lease.labeller_id,
                                                lease_id=lease_id, review=lease.review, created_at_us=now, proto=stored.SerializeToString()))
            conn.execute(leases.update().where(leases.c.lease_id == lease_id).values(state="fulfilled", label_id=lid))
            provenance = L.Sample.FromString(conn.execute(sa.select(samples.c.proto).where(samples.c.sample_id == item.sample_id)).scalar_one()).provenance
            self._emit(conn, topics.LABELS_CREATED, item.sample_id, E.LabelCreated(label=stored, provenance=provenance))
            return stored, False

        return self._tx(work)

    def _resolve(self, conn: Connection, item, new: L.Label, review: bool, now: int) -> dict:
        """Queue transition after a label: stay, done (agreed / majority / review) or to review."""
        if review:
            return dict(queue=DONE, resolution=L.RESOLUTION_REVIEW, final_label_id=new.label_id, resolved_at_us=now)
        if item.labels_done + 1 < item.labels_required:
            return dict(queue=LABEL)
        previous = [L.Label.FromString(r[0]) for r in conn.execute(
            sa.select(labels.c.proto).where(labels.c.sample_id == item.sample_id, labels.c.task == item.task, labels.c.review == sa.false())
            .order_by(labels.c.created_at_us, labels.c.label_id))]
        every = previous + [new]
        winner, disagreement = agreement.majority([lb.annotation for lb in every])
        if winner is None:
            return dict(queue=REVIEW, disagreement=True)
        return dict(queue=DONE, disagreement=disagreement, final_label_id=every[winner].label_id, resolved_at_us=now,
                    resolution=L.RESOLUTION_MAJORITY if disagreement else L.RESOLUTION_AGREED)

    def release_lease(self, lease_id: str, reason: str = "") -> bool:
        _id(lease_id, "lease_id")
        q = queue_items.c

        def work(conn: Connection):
            now = self.now_us()
            lease = conn.execute(sa.select(leases).where(leases.c.lease_id == lease_id)).first()
            if lease is None:
                raise StoreError("NOT_FOUND", f"no lease {lease_id!r}")
            if lease.state != "active" or lease.expires_at_us < now:
                return False
            freed = conn.execute(queue_items.update().where(q.id == lease.item_id, q.lease_id == lease_id, q.lease_expires_us >= now)
                                 .values(lease_id=None, lease_expires_us=0)).rowcount
            if freed != 1:
                return False
            conn.execute(leases.update().where(leases.c.lease_id == lease_id).values(state="released", reason=reason[:500]))
            return True

        return self._tx(work)

    def queue_stats(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(task, queue) -> (waiting, leased), for the gauges."""
        now = self.now_us()
        q = queue_items.c
        free = sa.func.sum(sa.case((q.lease_expires_us < now, 1), else_=0))
        query = sa.select(q.task, q.queue, sa.func.count(), free).where(q.queue != DONE).group_by(q.task, q.queue)
        with self.engine.connect() as conn:
            return {(t, qu): (int(f or 0), int(n) - int(f or 0)) for t, qu, n, f in conn.execute(query)}

    # -- datasets -------------------------------------------------------------------------------

    def _final_labels(self, conn: Connection, sample_ids: list[str], tasks: list[str]) -> dict[str, dict[str, str]]:
        q = queue_items.c
        out: dict[str, dict[str, str]] = {}
        for i in range(0, len(sample_ids), 500):
            chunk = sample_ids[i:i + 500]
            for sid, task, lid in conn.execute(sa.select(q.sample_id, q.task, q.final_label_id)
                                               .where(q.sample_id.in_(chunk), q.task.in_(tasks), q.queue == DONE)):
                out.setdefault(sid, {})[task] = lid
        return out

    def _manifest_from(self, conn: Connection, name: str, tasks: list[str], val: float, test: float,
                       chosen: dict[str, tuple[str, dict[str, str]]]) -> bytes:
        """chosen: sample_id -> (split, {task: label_id}) -> manifest bytes."""
        sample_msgs, label_msgs = {}, {}
        ids = sorted(chosen)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for sid, proto in conn.execute(sa.select(samples.c.sample_id, samples.c.proto).where(samples.c.sample_id.in_(chunk))):
                sample_msgs[sid] = L.Sample.FromString(proto)
            wanted = [lid for sid in chunk for lid in chosen[sid][1].values()]
            for lid, proto in conn.execute(sa.select(labels.c.label_id, labels.c.proto).where(labels.c.label_id.in_(wanted))):
                label_msgs[lid] = L.Label.FromString(proto)
        items = [(sample_msgs[sid], split, {t: label_msgs[lid] for t, lid in by_task.items()}) for sid, (split, by_task) in chosen.items()]
        return datasets.manifest(name, tasks, val, test, items)

    def _dataset_row(self, conn: Connection, name: str, version: int) -> L.DatasetVersion:
        d = datasets_t.c
        query = sa.select(d.proto).where(d.name == name)
        query = query.where(d.version == version) if version > 0 else query.order_by(d.version.desc()).limit(1)
        proto = conn.execute(query).scalar()
        if proto is None:
            raise StoreError("NOT_FOUND", f"no dataset {name!r}" + (f" version {version}" if version > 0 else ""))
        return L.DatasetVersion.FromString(proto)

    def create_dataset(self, name: str, task_names: list[str], f: L.SampleFilter, split: L.SplitSpec, description: str = "") -> tuple[L.DatasetVersion, bool]:
        if not DATASET_NAME.match(name):
            raise StoreError("INVALID_ARGUMENT", f"name: {name!r} must match [a-z0-9][a-z0-9_.-]* (at most 100 characters)")
        if not task_names:
            raise StoreError("INVALID_ARGUMENT", "tasks: name at least one task")
        tasks = sorted(set(task_names))
        try:
            val, test = datasets.fractions(split)
        except ValueError as exc:
            raise StoreError("INVALID_ARGUMENT", str(exc)) from None
        if self.objects is None:
            raise StoreError("FAILED_PRECONDITION", "no object store configured (S3_*): datasets cannot be written")
        selection = L.SampleFilter()
        selection.CopyFrom(f)
        selection.label_status = L.LABEL_STATUS_LABELLED
        selection.ClearField("tasks")
        selection.tasks.extend(tasks)
        with self.engine.connect() as conn:
            for t in tasks:
                self._task(conn, t)
            ids = [r[0] for r in conn.execute(sa.select(samples.c.sample_id).where(*self._filter(selection, tasks, True)))]
            finals = self._final_labels(conn, ids, tasks)
            chosen = {sid: (datasets.split_of(sid, val, test), finals[sid]) for sid in ids if len(finals.get(sid, {})) == len(tasks)}
            data = self._manifest_from(conn, name, tasks, val, test, chosen)
        digest = hashlib.sha256(data).hexdigest()
        counts = {"train": 0, "val": 0, "test": 0}
        for split_name, _ in chosen.values():
            counts[split_name] += 1

        def work(conn: Connection):
            d = datasets_t.c
            latest = conn.execute(sa.select(d.version, d.manifest_sha256, d.proto).where(d.name == name).order_by(d.version.desc()).limit(1)).first()
            if latest is not None and latest.manifest_sha256 == digest:
                return L.DatasetVersion.FromString(latest.proto), True
            version = (latest.version if latest else 0) + 1
            key = datasets.manifest_key(name, version, digest)
            self.objects.put_at(key, data, "application/x-ndjson", metadata={"sha256": digest})  # before the row: never a row without its manifest
            now = self.now_us()
            ds = L.DatasetVersion(name=name, version=version, tasks=tasks, manifest_key=key, manifest_sha256=digest,
                                  split_counts=L.SplitCounts(**counts), label_count=sum(len(v[1]) for v in chosen.values()),
                                  filter=selection, description=description, split=L.SplitSpec(val_fraction=val, test_fraction=test))
            _ts(ds.created_at, now)
            conn.execute(datasets_t.insert().values(name=name, version=version, manifest_key=key, manifest_sha256=digest,
                                                    created_at_us=now, proto=ds.SerializeToString()))
            rows = [dict(name=name, version=version, sample_id=sid, split=sp, label_ids=json.dumps(by_task, sort_keys=True))
                    for sid, (sp, by_task) in sorted(chosen.items())]
            for i in range(0, len(rows), 1000):
                conn.execute(dataset_items.insert(), rows[i:i + 1000])
            self._emit(conn, topics.DATASETS_PUBLISHED, name, E.DatasetPublished(dataset=ds))
            return ds, False

        return self._tx(work)

    def get_dataset(self, name: str, version: int = 0) -> L.DatasetVersion:
        with self.engine.connect() as conn:
            return self._dataset_row(conn, name, version)

    def list_datasets(self, name: str = "", page_size: int = 100, page_token: str = "") -> tuple[list[L.DatasetVersion], str]:
        size = min(page_size if page_size > 0 else 100, 1000)
        start = int(page_token) if page_token.isdigit() else 0
        d = datasets_t.c
        with self.engine.connect() as conn:
            if name:
                query = sa.select(d.proto).where(d.name == name).order_by(d.version.desc())
            else:
                latest = sa.select(d.name, sa.func.max(d.version).label("v")).group_by(d.name).subquery()
                query = sa.select(d.proto).join(latest, sa.and_(d.name == latest.c.name, d.version == latest.c.v)).order_by(d.name)
            rows = [L.DatasetVersion.FromString(r[0]) for r in conn.execute(query.offset(start).limit(size + 1))]
        return rows[:size], (str(start + size) if len(rows) > size else "")

    def rebuild_dataset(self, name: str, version: int = 0) -> tuple[L.DatasetVersion, str, bool, bool]:
        """Regenerate a version's manifest from its frozen selection; (dataset, sha, matches, reuploaded)."""
        with self.engine.connect() as conn:
            ds = self._dataset_row(conn, name, version)
            chosen = {sid: (split, json.loads(ids)) for sid, split, ids in conn.execute(
                sa.select(dataset_items.c.sample_id, dataset_items.c.split, dataset_items.c.label_ids)
                .where(dataset_items.c.name == name, dataset_items.c.version == ds.version))}
            val, test = ds.split.val_fraction, ds.split.test_fraction
            data = self._manifest_from(conn, name, list(ds.tasks), val, test, chosen)
        digest = hashlib.sha256(data).hexdigest()
        matches = digest == ds.manifest_sha256
        reuploaded = False
        if matches and self.objects is not None and not self.objects.exists(ds.manifest_key):
            self.objects.put_at(ds.manifest_key, data, "application/x-ndjson", metadata={"sha256": digest})
            reuploaded = True
        return ds, digest, matches, reuploaded

    # -- unit-test suites -----------------------------------------------------------------------

    def _suite_row(self, conn: Connection, name: str, version: int = 0):
        s = suites_t.c
        query = sa.select(suites_t).where(s.name == name)
        query = query.where(s.version == version) if version > 0 else query.order_by(s.version.desc()).limit(1)
        row = conn.execute(query).first()
        if row is None:
            raise StoreError("NOT_FOUND", f"no suite {name!r}" + (f" version {version}" if version > 0 else ""))
        return row

    def _cases(self, conn: Connection, name: str, version: int) -> list[L.SuiteCase]:
        c = suite_cases.c
        out = []
        for r in conn.execute(sa.select(suite_cases).where(c.suite == name, c.version == version).order_by(c.added_at_us, c.case_id)):
            case = L.SuiteCase(case_id=r.case_id, suite=name, sample_id=r.sample_id, predicate=r.predicate, note=r.note)
            _ts(case.added_at, r.added_at_us)
            out.append(case)
        return out

    def _suite_message(self, conn: Connection, row, with_cases: bool) -> L.Suite:
        count = conn.execute(sa.select(sa.func.count()).select_from(suite_cases).where(
            suite_cases.c.suite == row.name, suite_cases.c.version == row.version)).scalar_one()
        suite = L.Suite(name=row.name, version=row.version, task=row.task, cases_count=count, description=row.description, source_yaml=row.source_yaml)
        _ts(suite.updated_at, row.updated_at_us)
        if with_cases:
            suite.cases.extend(self._cases(conn, row.name, row.version))
        return suite

    def _write_suite(self, parsed: suites.SuiteFile, source: str) -> tuple[L.Suite, bool]:
        def work(conn: Connection):
            now = self.now_us()
            try:
                latest = self._suite_row(conn, parsed.name)
            except StoreError:
                latest = None
            fp = suites.fingerprint(parsed.task, parsed.description, parsed.cases, parsed.name)
            if latest is not None and latest.fingerprint == fp:
                return self._suite_message(conn, latest, False), False
            if latest is not None and latest.task != parsed.task:
                raise StoreError("INVALID_ARGUMENT", f"task: suite {parsed.name} tests task {latest.task!r}; a suite cannot change task")
            added = {}
            if latest is not None:
                added = {c.case_id: c.added_at.ToMicroseconds() for c in self._cases(conn, latest.name, latest.version)}
            version = (latest.version if latest else 0) + 1
            conn.execute(suites_t.insert().values(name=parsed.name, version=version, task=parsed.task, description=parsed.description,
                                                  source_yaml=source, fingerprint=fp, updated_at_us=now))
            rows = []
            for c in parsed.cases:
                cid = suites.case_id(parsed.name, c.sample_id, c.predicate)
                rows.append(dict(suite=parsed.name, version=version, case_id=cid, sample_id=c.sample_id, predicate=c.predicate,
                                 note=c.note, added_at_us=added.get(cid, now)))
            if rows:
                conn.execute(suite_cases.insert(), rows)
            return self._suite_message(conn, self._suite_row(conn, parsed.name, version), False), True

        return self._tx(work)

    def _check_refs(self, parsed: suites.SuiteFile) -> None:
        with self.engine.connect() as conn:
            try:
                self._task(conn, parsed.task)
            except StoreError as exc:
                raise StoreError("INVALID_ARGUMENT", f"task: {exc}") from None
            ids = sorted({c.sample_id for c in parsed.cases})
            known = set()
            for i in range(0, len(ids), 500):
                known |= {r[0] for r in conn.execute(sa.select(samples.c.sample_id).where(samples.c.sample_id.in_(ids[i:i + 500])))}
        for c in parsed.cases:
            if c.sample_id not in known:
                raise StoreError("INVALID_ARGUMENT", f"line {c.line}: sample {c.sample_id} is not registered in the label store")

    def upsert_suite(self, source: str) -> tuple[L.Suite, bool]:
        try:
            parsed = suites.parse(source)
        except suites.SuiteFileError as exc:
            raise StoreError("INVALID_ARGUMENT", str(exc)) from None
        self._check_refs(parsed)
        return self._write_suite(parsed, source)

    def get_suite(self, name: str, version: int = 0) -> L.Suite:
        with self.engine.connect() as conn:
            return self._suite_message(conn, self._suite_row(conn, name, version), True)

    def list_suites(self, task: str = "") -> list[L.Suite]:
        s = suites_t.c
        latest = sa.select(s.name, sa.func.max(s.version).label("v")).group_by(s.name).subquery()
        query = sa.select(suites_t).join(latest, sa.and_(s.name == latest.c.name, s.version == latest.c.v)).order_by(s.name)
        if task:
            query = query.where(s.task == task)
        with self.engine.connect() as conn:
            return [self._suite_message(conn, r, False) for r in conn.execute(query)]

    def promote(self, suite: str, sample_id: str, predicate: str, note: str = "") -> tuple[L.SuiteCase, L.Suite, bool]:
        """Add a (failing) fleet sample to a suite as a new case: a new suite version."""
        try:
            suites.check_predicate(predicate.strip())
        except suites.SuiteFileError as exc:
            raise StoreError("INVALID_ARGUMENT", str(exc)) from None
        predicate = predicate.strip()
        with self.engine.connect() as conn:
            row = self._suite_row(conn, suite)
            if conn.execute(sa.select(samples.c.sample_id).where(samples.c.sample_id == sample_id)).first() is None:
                raise StoreError("NOT_FOUND", f"no sample {sample_id!r}")
            cases = self._cases(conn, row.name, row.version)
        cid = suites.case_id(suite, sample_id, predicate)
        parsed = suites.SuiteFile(row.name, row.task, row.description, [suites.Case(c.sample_id, c.predicate, c.note) for c in cases])
        existed = any(c.case_id == cid for c in cases)
        if not existed:
            parsed.cases.append(suites.Case(sample_id, predicate, note))
            message, _ = self._write_suite(parsed, suites.render(parsed))
        else:
            with self.engine.connect() as conn:
                message = self._suite_message(conn, row, False)
        with self.engine.connect() as conn:
            [case] = [c for c in self._cases(conn, message.name, message.version) if c.case_id == cid]
        return case, message, existed

    def evaluate_suites(self, model: C.ModelRef, names: list[str], supplied: list[L.CasePredictions], record: bool) -> list[L.SuiteResult]:
        if not model.name or model.version <= 0:
            raise StoreError("INVALID_ARGUMENT", "model: needs a name and a positive version")
        given: dict[tuple[str, str], C.TaskPrediction] = {}
        for cp in supplied:
            for task, prediction in cp.predictions.items():
                given[(cp.sample_id, task)] = prediction
        with self.engine.connect() as conn:
            rows = [self._suite_row(conn, n) for n in dict.fromkeys(names)] if names else [
                self._suite_row(conn, s.name, s.version) for s in self.list_suites()]
            plan = [(row, self._cases(conn, row.name, row.version)) for row in rows]
            if not supplied:
                p = predictions.c
                wanted = sorted({c.sample_id for _, cases in plan for c in cases})
                for i in range(0, len(wanted), 500):
                    for sid, task, proto in conn.execute(sa.select(p.sample_id, p.task, p.proto).where(
                            p.sample_id.in_(wanted[i:i + 500]), p.model_name == model.name, p.model_version == model.version)):
                        given[(sid, task)] = C.TaskPrediction.FromString(proto)
                if wanted and not given:
                    raise StoreError("FAILED_PRECONDITION", f"no predictions supplied and none stored for model {model.name}:{model.version} "
                                     "(inference.results.v1); pass predictions in the request")
        results = []
        now = self.now_us()
        for row, cases in plan:
            result = L.SuiteResult(suite=row.name, suite_version=row.version, model=model)
            _ts(result.evaluated_at, now)
            for case in cases:
                outcome = predicates.evaluate(case.predicate, given.get((case.sample_id, row.task)))
                result.case_results.add(case_id=case.case_id, sample_id=case.sample_id, passed=outcome.passed, detail=outcome.detail)
                if outcome.passed:
                    result.passed += 1
                else:
                    result.failed_case_ids.append(case.case_id)
            result.total = len(cases)
            result.pass_rate = result.passed / result.total if result.total else 0.0
            results.append(result)
        if record:
            for result in results:
                self._tx(lambda conn, r=result: self._record(conn, r, now))
        return results

    def _record(self, conn: Connection, result: L.SuiteResult, now: int) -> None:
        r = suite_results.c
        key = (r.suite == result.suite, r.suite_version == result.suite_version, r.model_name == result.model.name, r.model_version == result.model.version)
        old = conn.execute(sa.select(r.id).where(*key)).scalar()
        if old is not None:  # re-evaluating the same model on the same suite version replaces the run
            conn.execute(case_results.delete().where(case_results.c.result_id == old))
            conn.execute(suite_results.delete().where(r.id == old))
        rid = conn.execute(suite_results.insert().values(
            suite=result.suite, suite_version=result.suite_version, model_name=result.model.name, model_version=result.model.version,
            passed=result.passed, total=result.total, evaluated_at_us=now)).inserted_primary_key[0]
        if result.case_results:
            conn.execute(case_results.insert(), [dict(result_id=rid, case_id=c.case_id, sample_id=c.sample_id, passed=c.passed, detail=c.detail[:2000])
                                                 for c in result.case_results])
        event = L.SuiteResult()
        event.CopyFrom(result)
        event.ClearField("case_results")
        self._emit(conn, topics.SUITES_EVALUATED, result.model.name, E.SuiteEvaluated(result=event))

    def suite_report(self, suite: str = "", model_name: str = "", last_versions: int = 0) -> list[L.SuiteResult]:
        """Per (suite, model version): the latest recorded run; newest model versions first."""
        r = suite_results.c
        query = sa.select(suite_results)
        if suite:
            query = query.where(r.suite == suite)
        if model_name:
            query = query.where(r.model_name == model_name)
        with self.engine.connect() as conn:
            runs = list(conn.execute(query.order_by(r.suite_version, r.evaluated_at_us, r.id)))
            failed: dict[int, list[str]] = {}
            latest = {}
            for run in runs:  # later suite versions / later runs overwrite earlier ones
                latest[(run.suite, run.model_name, run.model_version)] = run
            ids = [run.id for run in latest.values()]
            for i in range(0, len(ids), 500):
                for rid, cid in conn.execute(sa.select(case_results.c.result_id, case_results.c.case_id)
                                             .where(case_results.c.result_id.in_(ids[i:i + 500]), case_results.c.passed == sa.false())):
                    failed.setdefault(rid, []).append(cid)
        keep_versions: dict[str, set[int]] = {}
        if last_versions:
            by_model: dict[str, set[int]] = {}
            for _, m, v in latest:
                by_model.setdefault(m, set()).add(v)
            keep_versions = {m: set(sorted(vs, reverse=True)[:last_versions]) for m, vs in by_model.items()}
        out = []
        for (s, m, v), run in sorted(latest.items(), key=lambda kv: (kv[0][1], -kv[0][2], kv[0][0])):
            if last_versions and v not in keep_versions[m]:
                continue
            result = L.SuiteResult(suite=s, suite_version=run.suite_version, model=C.ModelRef(name=m, version=v), passed=run.passed, total=run.total,
                                   pass_rate=run.passed / run.total if run.total else 0.0, failed_case_ids=sorted(failed.get(run.id, [])))
            _ts(result.evaluated_at, run.evaluated_at_us)
            out.append(result)
        return out

    # -- outbox ---------------------------------------------------------------------------------

    def outbox_batch(self, limit: int = 500) -> list[tuple[int, str, str, bytes]]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value).order_by(outbox.c.id).limit(limit))]

    def outbox_delete(self, ids: list[int]) -> None:
        if ids:
            self._tx(lambda conn: conn.execute(outbox.delete().where(outbox.c.id.in_(ids))))
