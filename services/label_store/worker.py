"""The Kafka side of label-store: consume fleet.snapshots.v1 (every uploaded snapshot becomes a
sample, idempotent by content hash) and inference.results.v1 (pre-labels and uncertainty, which
reprioritise the queues). Group "label-store", commit after the database commit, malformed
records to ops.dead-letters.v1 — so a restart never loses a snapshot whose offset was committed.
"""

from __future__ import annotations

from collections.abc import Callable

from longtail import topics
from longtail.kafka import BatchConsumer, ConsumerThread, Producer, Record, RecordError
from longtail.log import get_logger

from label_store.aggregates.samples import sample_from_snapshot, validate_sample
from label_store.service import SAMPLES, SERVICE
from label_store.store import LabelStore
from label_store.tx import StoreError

log = get_logger(__name__)
TOPICS = (topics.SNAPSHOTS, topics.INFERENCE_RESULTS)


class SampleWorker(ConsumerThread):
    def __init__(self, store: LabelStore, producer: Producer, bootstrap: str, group_id: str = SERVICE, batch_size: int = 200, on_change: Callable[[], object] = lambda: None) -> None:
        self.store = store
        self.on_change = on_change
        # A short session: after a crash the replacement gets the partitions in seconds, not 45 s.
        consumer = BatchConsumer(bootstrap, group_id, TOPICS, self.handle, producer, batch_size=batch_size, **{"session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000})
        super().__init__(consumer, "label-store-worker")
        self.registered = 0

    def handle(self, records: list[Record]) -> None:
        new_samples, results = [], []
        for rec in records:  # validate everything first: a bad record raises before anything is written
            if rec.value is None:
                continue
            if rec.topic == topics.SNAPSHOTS.name:
                event = rec.value
                if rec.key is not None and rec.key != event.snapshot_id:
                    raise RecordError(f"key {rec.key!r} != snapshot_id {event.snapshot_id!r}")
                sample = sample_from_snapshot(event)
                try:
                    validate_sample(sample)
                except StoreError as exc:
                    raise RecordError(str(exc)) from None
                new_samples.append(sample)
            else:
                if not rec.value.snapshot_id or not rec.value.model.name or rec.value.model.version <= 0:
                    raise RecordError("inference result without snapshot_id or model name/version")
                results.append(rec.value)
        if new_samples:
            outcome = self.store.samples.register(new_samples)
            created = sum(1 for _, c in outcome if c)
            self.registered += created
            SAMPLES.labels(SERVICE, "created").inc(created)
            SAMPLES.labels(SERVICE, "existing").inc(len(outcome) - created)
        for result in results:
            try:
                self.store.samples.record_predictions(result)
            except StoreError as exc:
                raise RecordError(str(exc)) from None
        if new_samples or results:
            self.on_change()
