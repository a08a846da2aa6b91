"""The labelling queue: leases, labels and their resolution (docs/label-store.md).

- each (task, sample) is one queue item in queue LABEL, REVIEW or DONE;
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
import math
import re
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from longtail import topics
from longtail.labels.v1 import events_pb2 as E
from longtail.labels.v1 import labels_pb2 as L

from label_store import agreement
from label_store.aggregates.samples import SAMPLE_ID, Samples
from label_store.aggregates.tasks import Tasks
from label_store.db import DONE, LABEL, REVIEW, labels, leases, queue_items, samples
from label_store.schema import SchemaError, validate_annotation
from label_store.tx import StoreError, Transactions, check_id, set_time

MIN_LEASE_S, MAX_LEASE_S = 0.05, 24 * 3600.0
PAGE_TOKEN = re.compile(r"^(-?[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?)/([0-9]{1,18})$")  # "<priority>/<item id>" of the last item
CANDIDATES = 8  # items one claim tries before giving up (others may win the race for each)


def label_id(sample_id: str, task: str, labeller_id: str, idempotency_key: str) -> str:
    return hashlib.sha256(f"{sample_id}/{task}/{labeller_id}/{idempotency_key}".encode()).hexdigest()


class Queue:
    def __init__(self, tx: Transactions, tasks: Tasks, samples: Samples, default_lease_s: float = 600.0) -> None:
        self.tx = tx
        self.tasks = tasks
        self.samples = samples
        self.default_lease_s = default_lease_s

    def next_task(self, task: str, labeller_id: str, lease_s: float | None = None, review: bool = False, sample_id: str = "") -> tuple[L.LabelLease | None, int]:
        """Lease the highest-priority free item of the task's queue (with `sample_id`: that
        sample's item, when it is free) to the labeller; None when there is none."""
        check_id(labeller_id, "labeller_id")
        if sample_id and not SAMPLE_ID.match(sample_id):
            raise StoreError("INVALID_ARGUMENT", f"sample_id {sample_id[:80]!r} is not a lowercase sha256 hex digest")
        lease_s = self.default_lease_s if lease_s is None or lease_s == 0 else lease_s
        if not MIN_LEASE_S <= lease_s <= MAX_LEASE_S:
            raise StoreError("INVALID_ARGUMENT", f"lease_duration: {lease_s}s is not within [{MIN_LEASE_S}, {MAX_LEASE_S:.0f}] seconds")
        wanted = REVIEW if review else LABEL
        q = queue_items.c

        def work(conn: Connection):
            task_msg = self.tasks.load(conn, task)
            now = self.tx.now_us()
            mine = sa.exists().where(labels.c.sample_id == q.sample_id, labels.c.task == q.task, labels.c.labeller_id == labeller_id)
            candidates = sa.select(q.id).where(q.task == task, q.queue == wanted, q.lease_expires_us < now, ~mine).order_by(q.priority.desc(), q.id).limit(CANDIDATES)
            if sample_id:
                candidates = candidates.where(q.sample_id == sample_id)
            if not self.tx.sqlite:  # PostgreSQL: don't queue up behind rows another labeller is claiming
                candidates = candidates.with_for_update(skip_locked=True, of=queue_items)
            lease_id = str(uuid.uuid4())
            expires = now + int(lease_s * 1_000_000)
            for (item_id,) in list(conn.execute(candidates)):
                # Compare-and-set: only an item whose lease (if any) has expired can be claimed.
                claimed = conn.execute(queue_items.update().where(q.id == item_id, q.queue == wanted, q.lease_expires_us < now).values(lease_id=lease_id, lease_expires_us=expires)).rowcount
                if claimed != 1:
                    continue
                conn.execute(leases.update().where(leases.c.item_id == item_id, leases.c.state == "active").values(state="expired"))
                conn.execute(leases.insert().values(lease_id=lease_id, item_id=item_id, labeller_id=labeller_id, review=review, state="active", created_at_us=now, expires_at_us=expires))
                return self._lease_message(conn, task_msg, item_id, lease_id, labeller_id, expires, review), self._depth(conn, task, wanted, now)
            return None, self._depth(conn, task, wanted, now)

        return self.tx.run(work)

    def _depth(self, conn: Connection, task: str, queue: str, now: int) -> int:
        q = queue_items.c
        return conn.execute(sa.select(sa.func.count()).select_from(queue_items).where(q.task == task, q.queue == queue, q.lease_expires_us < now)).scalar_one()

    def _lease_message(self, conn: Connection, task: L.Task, item_id: int, lease_id: str, labeller_id: str, expires: int, review: bool) -> L.LabelLease:
        sample_id = conn.execute(sa.select(queue_items.c.sample_id).where(queue_items.c.id == item_id)).scalar_one()
        rows = list(conn.execute(sa.select(samples.c.sample_id, samples.c.proto, samples.c.registered_at_us).where(samples.c.sample_id == sample_id)))
        [sample] = self.samples.decorate(conn, rows)
        lease = L.LabelLease(lease_id=lease_id, labeller_id=labeller_id, task=task.name, sample=sample, review=review)
        set_time(lease.expires_at, expires)
        if task.name in sample.pre_labels:
            lease.pre_label.CopyFrom(sample.pre_labels[task.name])
        if review:
            lease.previous_labels.extend(L.Label.FromString(r[0]) for r in conn.execute(sa.select(labels.c.proto).where(labels.c.sample_id == sample_id, labels.c.task == task.name).order_by(labels.c.created_at_us)))
        return lease

    def submit_label(self, lease_id: str, idempotency_key: str, label: L.Label) -> tuple[L.Label, bool]:
        check_id(lease_id, "lease_id")
        check_id(idempotency_key, "idempotency_key")
        q = queue_items.c

        def work(conn: Connection):
            now = self.tx.now_us()
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
                raise StoreError("ALREADY_EXISTS", f"lease {lease_id} was already fulfilled by label {lease.label_id}; a retry must reuse its idempotency_key")
            if lease.state == "released":
                raise StoreError("FAILED_PRECONDITION", f"lease {lease_id} was released; get a new task")
            if lease.expires_at_us < now or item.lease_id != lease_id:
                raise StoreError("FAILED_PRECONDITION", f"lease {lease_id} expired at {lease.expires_at_us / 1e6:.3f} (now {now / 1e6:.3f}); the item went back to the queue — get a new task")
            task = self.tasks.load(conn, item.task)
            try:
                validate_annotation(task, label.annotation)
            except SchemaError as exc:
                raise StoreError("INVALID_ARGUMENT", str(exc)) from None
            stored = L.Label()
            stored.CopyFrom(label)
            stored.label_id, stored.sample_id, stored.task, stored.labeller_id = lid, item.sample_id, item.task, lease.labeller_id
            set_time(stored.created_at, now)
            stored.labelling_time.FromMicroseconds(max(now - lease.created_at_us, 0))
            # Claim the item back from the lease atomically: if it expired and was re-leased
            # concurrently (PostgreSQL), this matches no row and the label is refused.
            values = dict(lease_id=None, lease_expires_us=0, labels_done=item.labels_done + 1)
            values.update(self._resolve(conn, item, stored, lease.review, now))
            done = conn.execute(queue_items.update().where(q.id == item.id, q.lease_id == lease_id, q.lease_expires_us >= now).values(**values)).rowcount
            if done != 1:
                raise StoreError("FAILED_PRECONDITION", f"lease {lease_id} expired; get a new task")
            conn.execute(labels.insert().values(label_id=lid, sample_id=item.sample_id, task=item.task, labeller_id=lease.labeller_id, lease_id=lease_id, review=lease.review, created_at_us=now, proto=stored.SerializeToString()))
            conn.execute(leases.update().where(leases.c.lease_id == lease_id).values(state="fulfilled", label_id=lid))
            provenance = L.Sample.FromString(conn.execute(sa.select(samples.c.proto).where(samples.c.sample_id == item.sample_id)).scalar_one()).provenance
            self.tx.emit(conn, topics.LABELS_CREATED, item.sample_id, E.LabelCreated(label=stored, provenance=provenance))
            return stored, False

        return self.tx.run(work)

    def _resolve(self, conn: Connection, item, new: L.Label, review: bool, now: int) -> dict:
        """Queue transition after a label: stay, done (agreed / majority / review) or to review."""
        if review:
            return dict(queue=DONE, resolution=L.RESOLUTION_REVIEW, final_label_id=new.label_id, resolved_at_us=now)
        if item.labels_done + 1 < item.labels_required:
            return dict(queue=LABEL)
        previous = [
            L.Label.FromString(r[0]) for r in conn.execute(sa.select(labels.c.proto).where(labels.c.sample_id == item.sample_id, labels.c.task == item.task, labels.c.review == sa.false()).order_by(labels.c.created_at_us, labels.c.label_id))
        ]
        every = previous + [new]
        winner, disagreement = agreement.majority([lb.annotation for lb in every])
        if winner is None:
            return dict(queue=REVIEW, disagreement=True)
        return dict(queue=DONE, disagreement=disagreement, final_label_id=every[winner].label_id, resolved_at_us=now, resolution=L.RESOLUTION_MAJORITY if disagreement else L.RESOLUTION_AGREED)

    def waiting(self, task: str, review: bool = False, page_size: int = 100, page_token: str = "") -> tuple[list[L.QueueItem], str]:
        """The items of a task's queue, highest priority first (leased ones too, marked), without
        leasing them. The page token is the last item's (priority, id)."""
        if not 0 <= page_size <= 500:
            raise StoreError("INVALID_ARGUMENT", f"page_size: {page_size} is not within [1, 500] (0: 100)")
        page_size = page_size or 100
        q = queue_items.c
        where = [q.task == task, q.queue == (REVIEW if review else LABEL)]
        if page_token:
            match = PAGE_TOKEN.match(page_token)
            after = (float(match.group(1)), int(match.group(2))) if match else None
            if after is None or not math.isfinite(after[0]):
                raise StoreError("INVALID_ARGUMENT", f"page_token: {page_token[:80]!r} is not a token this method returned")
            where.append(sa.or_(q.priority < after[0], sa.and_(q.priority == after[0], q.id > after[1])))
        with self.tx.connect() as conn:
            self.tasks.load(conn, task)  # NOT_FOUND for an unknown task
            now = self.tx.now_us()
            rows = list(conn.execute(sa.select(q.id, q.sample_id, q.priority, q.labels_required, q.labels_done, q.lease_expires_us).where(*where).order_by(q.priority.desc(), q.id).limit(page_size + 1)))
            page = rows[:page_size]
            found = {s.sample_id: s for s in self.samples.decorate(conn, list(conn.execute(sa.select(samples.c.sample_id, samples.c.proto, samples.c.registered_at_us).where(samples.c.sample_id.in_([r.sample_id for r in page])))))}
        items = [L.QueueItem(sample=found[r.sample_id], labels_required=r.labels_required, labels_done=r.labels_done, leased=r.lease_expires_us >= now) for r in page]
        return items, (f"{page[-1].priority!r}/{page[-1].id}" if len(rows) > page_size else "")

    def release_lease(self, lease_id: str, reason: str = "") -> bool:
        check_id(lease_id, "lease_id")
        q = queue_items.c

        def work(conn: Connection):
            now = self.tx.now_us()
            lease = conn.execute(sa.select(leases).where(leases.c.lease_id == lease_id)).first()
            if lease is None:
                raise StoreError("NOT_FOUND", f"no lease {lease_id!r}")
            if lease.state != "active" or lease.expires_at_us < now:
                return False
            freed = conn.execute(queue_items.update().where(q.id == lease.item_id, q.lease_id == lease_id, q.lease_expires_us >= now).values(lease_id=None, lease_expires_us=0)).rowcount
            if freed != 1:
                return False
            conn.execute(leases.update().where(leases.c.lease_id == lease_id).values(state="released", reason=reason[:500]))
            return True

        return self.tx.run(work)

    def stats(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(task, queue) -> (waiting, leased), for the gauges."""
        now = self.tx.now_us()
        q = queue_items.c
        free = sa.func.sum(sa.case((q.lease_expires_us < now, 1), else_=0))
        query = sa.select(q.task, q.queue, sa.func.count(), free).where(q.queue != DONE).group_by(q.task, q.queue)
        with self.tx.connect() as conn:
            return {(t, qu): (int(f or 0), int(n) - int(f or 0)) for t, qu, n, f in conn.execute(query)}
