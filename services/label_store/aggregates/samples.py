"""Samples: registration (idempotent by content hash, joining every task's queue), lookups and
filters, and the pre-labels from inference results that reprioritise the queues."""

from __future__ import annotations

import re
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from longtail import topics
from longtail.common.v1 import common_pb2 as C
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.inference.v1 import events_pb2 as inference_events
from longtail.labels.v1 import events_pb2 as E
from longtail.labels.v1 import labels_pb2 as L

from label_store.db import DONE, LABEL, REVIEW, labels, predictions, queue_items, samples, suite_cases
from label_store.db import tasks as tasks_t
from label_store.tx import StoreError, Transactions, set_time

SAMPLE_ID = re.compile(r"^[0-9a-f]{64}$")
MAX_FILTER_IDS = 10_000  # sample ids one filter may name (one SQL IN list)


def sample_from_snapshot(event: fleet_events.SnapshotUploaded) -> L.Sample:
    """A SnapshotUploaded event as a sample (provenance, object location, the car's detections)."""
    s = L.Sample(sample_id=event.snapshot_id, bucket=event.bucket, object_key=event.object_key, content_type=event.content_type, size_bytes=event.size_bytes, priority=float(event.priority))
    p = s.provenance
    p.vehicle_id, p.frame_id, p.trigger_id, p.trigger_version, p.fire_id = (event.vehicle_id, event.frame_id, event.trigger_id, event.trigger_version, event.fire_id)
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


class Samples:
    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def register(self, batch: Iterable[L.Sample]) -> list[tuple[L.Sample, bool]]:
        """Idempotent by sample_id (the content hash): (sample, created) per input, in order."""
        batch = list(batch)
        for s in batch:
            validate_sample(s)

        def work(conn: Connection):
            now = self.tx.now_us()
            ids = list({s.sample_id for s in batch})
            existing = {r[0] for r in conn.execute(sa.select(samples.c.sample_id).where(samples.c.sample_id.in_(ids)))}
            task_rows = list(conn.execute(sa.select(tasks_t.c.name, tasks_t.c.labels_per_sample)))
            entropy = {}
            if ids:
                for sid, task, h in conn.execute(sa.select(predictions.c.sample_id, predictions.c.task, sa.func.max(predictions.c.entropy)).where(predictions.c.sample_id.in_(ids)).group_by(predictions.c.sample_id, predictions.c.task)):
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
                conn.execute(
                    samples.insert().values(
                        sample_id=s.sample_id,
                        vehicle_id=p.vehicle_id,
                        trigger_id=p.trigger_id,
                        trigger_version=p.trigger_version,
                        captured_at_us=p.captured_at.ToMicroseconds() if p.HasField("captured_at") else now,
                        priority=s.priority,
                        registered_at_us=now,
                        proto=stored.SerializeToString(),
                    )
                )
                if task_rows:
                    conn.execute(
                        queue_items.insert(),
                        [
                            dict(
                                task=name,
                                sample_id=s.sample_id,
                                priority=s.priority + entropy.get((s.sample_id, name), 0.0),
                                queue=LABEL,
                                lease_expires_us=0,
                                labels_required=required,
                                labels_done=0,
                                disagreement=False,
                                resolution=0,
                                enqueued_at_us=now,
                            )
                            for name, required in task_rows
                        ],
                    )
                set_time(stored.registered_at, now)
                stored.tasks.extend(name for name, _ in task_rows)
                self.tx.emit(conn, topics.SAMPLES_REGISTERED, s.sample_id, E.SampleRegistered(sample=stored))
                created_now.add(s.sample_id)
                out.append((stored, True))
            return out

        return self.tx.run(work)

    def decorate(self, conn: Connection, rows) -> list[L.Sample]:
        """Sample rows -> messages with tasks, labelled tasks and latest pre-labels filled in."""
        out = {}
        for sid, proto, registered in rows:
            s = L.Sample.FromString(proto)
            set_time(s.registered_at, registered)
            out[sid] = s
        if not out:
            return []
        q = queue_items.c
        for sid, task, labels_done in conn.execute(sa.select(q.sample_id, q.task, q.labels_done).where(q.sample_id.in_(list(out))).order_by(q.task)):
            out[sid].tasks.append(task)
            if labels_done:
                out[sid].labelled_tasks.append(task)
        p = predictions.c
        for sid, task, name, version, proto in conn.execute(sa.select(p.sample_id, p.task, p.model_name, p.model_version, p.proto).where(p.sample_id.in_(list(out))).order_by(p.model_version)):
            s = out[sid]
            s.pre_labels[task].CopyFrom(C.TaskPrediction.FromString(proto))  # the newest version wins
            s.pre_label_model.name, s.pre_label_model.version = name, version
        return list(out.values())

    def get(self, sample_id: str) -> tuple[L.Sample, list[L.Label], list[L.TaskLabelState]]:
        with self.tx.connect() as conn:
            rows = list(conn.execute(sa.select(samples.c.sample_id, samples.c.proto, samples.c.registered_at_us).where(samples.c.sample_id == sample_id)))
            if not rows:
                raise StoreError("NOT_FOUND", f"no sample {sample_id!r}")
            [sample] = self.decorate(conn, rows)
            found = [L.Label.FromString(r[0]) for r in conn.execute(sa.select(labels.c.proto).where(labels.c.sample_id == sample_id).order_by(labels.c.created_at_us, labels.c.label_id))]
            q = queue_items.c
            states = [
                L.TaskLabelState(task=r.task, labels_required=r.labels_required, labels_done=r.labels_done, in_review=r.queue == REVIEW, disagreement=r.disagreement, resolution=r.resolution, final_label_id=r.final_label_id or "")
                for r in conn.execute(sa.select(queue_items).where(q.sample_id == sample_id).order_by(q.task))
            ]
        return sample, found, states

    def where(self, f: L.SampleFilter, tasks: list[str], require_done: bool | None):
        """WHERE clauses over `samples` for a SampleFilter; require_done: True=labelled, False=unlabelled."""
        s, q = samples.c, queue_items.c
        where: list[sa.ColumnElement[bool]] = []
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
            each: list[str | None] = list(tasks) if tasks else [None]
            for task in each:
                cond = [q.sample_id == s.sample_id, q.queue == DONE] + ([q.task == task] if task else [])
                where.append(sa.exists().where(*cond))
        elif require_done is False:
            cond = [q.sample_id == s.sample_id, q.queue != DONE] + ([q.task.in_(tasks)] if tasks else [])
            where.append(sa.exists().where(*cond))
        elif tasks:
            where.append(sa.exists().where(q.sample_id == s.sample_id, q.task.in_(tasks)))
        return where

    def list(self, f: L.SampleFilter, page_size: int = 100, page_token: str = "") -> tuple[list[L.Sample], str]:
        size = min(page_size if page_size > 0 else 100, 1000)
        status = {L.LABEL_STATUS_LABELLED: True, L.LABEL_STATUS_UNLABELLED: False}.get(f.label_status)
        where = self.where(f, list(f.tasks), status)
        if page_token:
            where.append(samples.c.sample_id > page_token)
        query = sa.select(samples.c.sample_id, samples.c.proto, samples.c.registered_at_us).where(*where).order_by(samples.c.sample_id).limit(size + 1)
        with self.tx.connect() as conn:
            rows = list(conn.execute(query))
            page = self.decorate(conn, rows[:size])
        return page, (rows[size - 1][0] if len(rows) > size else "")

    def record_predictions(self, result: inference_events.InferenceResult) -> int:
        """Store an inference result (idempotent upsert) and reprioritise the queue by uncertainty."""
        if not SAMPLE_ID.match(result.snapshot_id):
            raise StoreError("INVALID_ARGUMENT", f"snapshot_id {result.snapshot_id[:80]!r} is not a sha256 hex digest")
        if not result.model.name or result.model.version <= 0:
            raise StoreError("INVALID_ARGUMENT", "model needs a name and a positive version")

        def work(conn: Connection):
            now = self.tx.now_us()
            p, q = predictions.c, queue_items.c
            base = conn.execute(sa.select(samples.c.priority).where(samples.c.sample_id == result.snapshot_id)).scalar()
            for task, prediction in result.predictions.items():
                key = (p.sample_id == result.snapshot_id, p.task == task, p.model_name == result.model.name, p.model_version == result.model.version)
                conn.execute(predictions.delete().where(*key))
                conn.execute(
                    predictions.insert().values(
                        sample_id=result.snapshot_id, task=task, model_name=result.model.name, model_version=result.model.version, entropy=float(prediction.uncertainty.entropy), inferred_at_us=now, proto=prediction.SerializeToString()
                    )
                )
                if base is not None:
                    conn.execute(queue_items.update().where(q.sample_id == result.snapshot_id, q.task == task, q.queue == LABEL).values(priority=base + float(prediction.uncertainty.entropy)))
            return len(result.predictions)

        return self.tx.run(work)
