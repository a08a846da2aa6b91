"""Dataset versions: frozen selections of resolved labels, their manifests in the object store,
and bit-for-bit rebuilds."""

from __future__ import annotations

import hashlib
import json
import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from longtail import topics
from longtail.labels.v1 import events_pb2 as E
from longtail.labels.v1 import labels_pb2 as L

from label_store import datasets
from label_store.aggregates.samples import Samples
from label_store.aggregates.tasks import Tasks
from label_store.db import DONE, dataset_items, labels, queue_items, samples
from label_store.db import datasets as datasets_t
from label_store.tx import StoreError, Transactions, set_time

DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


class Datasets:
    def __init__(self, tx: Transactions, tasks: Tasks, samples: Samples, objects=None) -> None:
        self.tx = tx
        self.tasks = tasks
        self.samples = samples
        self.objects = objects  # longtail.storage.ObjectStore; None: datasets cannot be created

    def _final_labels(self, conn: Connection, sample_ids: list[str], tasks: list[str]) -> dict[str, dict[str, str]]:
        q = queue_items.c
        out: dict[str, dict[str, str]] = {}
        for i in range(0, len(sample_ids), 500):
            chunk = sample_ids[i : i + 500]
            for sid, task, lid in conn.execute(sa.select(q.sample_id, q.task, q.final_label_id).where(q.sample_id.in_(chunk), q.task.in_(tasks), q.queue == DONE)):
                out.setdefault(sid, {})[task] = lid
        return out

    def _manifest_from(self, conn: Connection, name: str, tasks: list[str], val: float, test: float, chosen: dict[str, tuple[str, dict[str, str]]]) -> bytes:
        """chosen: sample_id -> (split, {task: label_id}) -> manifest bytes."""
        sample_msgs, label_msgs = {}, {}
        ids = sorted(chosen)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            for sid, proto in conn.execute(sa.select(samples.c.sample_id, samples.c.proto).where(samples.c.sample_id.in_(chunk))):
                sample_msgs[sid] = L.Sample.FromString(proto)
            wanted = [lid for sid in chunk for lid in chosen[sid][1].values()]
            for lid, proto in conn.execute(sa.select(labels.c.label_id, labels.c.proto).where(labels.c.label_id.in_(wanted))):
                label_msgs[lid] = L.Label.FromString(proto)
        items = [(sample_msgs[sid], split, {t: label_msgs[lid] for t, lid in by_task.items()}) for sid, (split, by_task) in chosen.items()]
        return datasets.manifest(name, tasks, val, test, items)

    def _row(self, conn: Connection, name: str, version: int) -> L.DatasetVersion:
        d = datasets_t.c
        query = sa.select(d.proto).where(d.name == name)
        query = query.where(d.version == version) if version > 0 else query.order_by(d.version.desc()).limit(1)
        proto = conn.execute(query).scalar()
        if proto is None:
            raise StoreError("NOT_FOUND", f"no dataset {name!r}" + (f" version {version}" if version > 0 else ""))
        return L.DatasetVersion.FromString(proto)

    def create(self, name: str, task_names: list[str], f: L.SampleFilter, split: L.SplitSpec, description: str = "") -> tuple[L.DatasetVersion, bool]:
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
        with self.tx.connect() as conn:
            for t in tasks:
                self.tasks.load(conn, t)
            ids = [r[0] for r in conn.execute(sa.select(samples.c.sample_id).where(*self.samples.where(selection, tasks, True)))]
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
            now = self.tx.now_us()
            ds = L.DatasetVersion(
                name=name,
                version=version,
                tasks=tasks,
                manifest_key=key,
                manifest_sha256=digest,
                split_counts=L.SplitCounts(**counts),
                label_count=sum(len(v[1]) for v in chosen.values()),
                filter=selection,
                description=description,
                split=L.SplitSpec(val_fraction=val, test_fraction=test),
            )
            set_time(ds.created_at, now)
            conn.execute(datasets_t.insert().values(name=name, version=version, manifest_key=key, manifest_sha256=digest, created_at_us=now, proto=ds.SerializeToString()))
            rows = [dict(name=name, version=version, sample_id=sid, split=sp, label_ids=json.dumps(by_task, sort_keys=True)) for sid, (sp, by_task) in sorted(chosen.items())]
            for i in range(0, len(rows), 1000):
                conn.execute(dataset_items.insert(), rows[i : i + 1000])
            self.tx.emit(conn, topics.DATASETS_PUBLISHED, name, E.DatasetPublished(dataset=ds))
            return ds, False

        return self.tx.run(work)

    def get(self, name: str, version: int = 0) -> L.DatasetVersion:
        with self.tx.connect() as conn:
            return self._row(conn, name, version)

    def list(self, name: str = "", page_size: int = 100, page_token: str = "") -> tuple[list[L.DatasetVersion], str]:
        size = min(page_size if page_size > 0 else 100, 1000)
        start = int(page_token) if page_token.isdigit() else 0
        d = datasets_t.c
        with self.tx.connect() as conn:
            if name:
                query = sa.select(d.proto).where(d.name == name).order_by(d.version.desc())
            else:
                latest = sa.select(d.name, sa.func.max(d.version).label("v")).group_by(d.name).subquery()
                query = sa.select(d.proto).join(latest, sa.and_(d.name == latest.c.name, d.version == latest.c.v)).order_by(d.name)
            rows = [L.DatasetVersion.FromString(r[0]) for r in conn.execute(query.offset(start).limit(size + 1))]
        return rows[:size], (str(start + size) if len(rows) > size else "")

    def rebuild(self, name: str, version: int = 0) -> tuple[L.DatasetVersion, str, bool, bool]:
        """Regenerate a version's manifest from its frozen selection; (dataset, sha, matches, reuploaded)."""
        with self.tx.connect() as conn:
            ds = self._row(conn, name, version)
            chosen = {
                sid: (split, json.loads(ids))
                for sid, split, ids in conn.execute(sa.select(dataset_items.c.sample_id, dataset_items.c.split, dataset_items.c.label_ids).where(dataset_items.c.name == name, dataset_items.c.version == ds.version))
            }
            val, test = ds.split.val_fraction, ds.split.test_fraction
            data = self._manifest_from(conn, name, list(ds.tasks), val, test, chosen)
        digest = hashlib.sha256(data).hexdigest()
        matches = digest == ds.manifest_sha256
        reuploaded = False
        if matches and self.objects is not None and not self.objects.exists(ds.manifest_key):
            self.objects.put_at(ds.manifest_key, data, "application/x-ndjson", metadata={"sha256": digest})
            reuploaded = True
        return ds, digest, matches, reuploaded
