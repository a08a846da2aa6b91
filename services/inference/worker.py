"""The Kafka side of inference: consume fleet.snapshots.v1 (group "inference", commit after
processing, dead letters), fetch each snapshot from the object store, score the batch on Triton
with the served production version and produce one `InferenceResult` per snapshot on
inference.results.v1, keyed by snapshot_id (== the label store's sample_id, so its upserts are
co-partitioned and a redelivery overwrites the same row).

Per batch: validate and fetch every record first (a bad record raises RecordError before anything
was produced, so the BatchConsumer's record-by-record retry dead-letters exactly that one), then
score in client-side batches of at most `max_batch` images of one size (Triton's dynamic batcher
merges concurrent calls further), produce, flush, and only then let the consumer commit.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from minio.error import S3Error
from prometheus_client import Counter, Histogram

from longtail import topics
from longtail.inference.v1 import events_pb2
from longtail.kafka import BatchConsumer, ConsumerThread, Producer, Record, RecordError
from longtail.log import get_logger
from longtail.model.postprocess import postprocess
from longtail.predictions import predictions
from longtail.snapshots import BadImage, decode_snapshot

from inference.serving import SERVICE, ModelManager

log = get_logger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
REQUESTS = Counter("longtail_inference_requests_total", "Triton inference calls, by path (grpc, snapshots) and outcome", ["service", "path", "outcome"])
IMAGES = Counter("longtail_inference_images_total", "Images scored, by path and model version", ["service", "path", "version"])
LATENCY = Histogram("longtail_inference_request_duration_seconds", "Triton round trip of one inference call (one image on the gRPC path, a batch on the snapshot path)", ["service", "path"], buckets=LATENCY_BUCKETS)
SNAPSHOTS = Counter("longtail_inference_snapshots_total", "Snapshot events, by outcome (scored, skipped)", ["service", "outcome"])


def score(manager: ModelManager, images: list[np.ndarray], path: str, max_batch: int = 64, only=(), version: int = 0):
    """Score images (any mix of sizes) on `version` (0 = the served production version);
    returns (the ModelVersion that ran, [predictions per image], [Triton seconds per image])."""
    results: list = [None] * len(images)
    seconds: list[float] = [0.0] * len(images)
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(img.shape, []).append(i)
    with manager.lease(version) as mv:
        for indices in by_shape.values():
            for start in range(0, len(indices), max_batch):
                chunk = indices[start : start + max_batch]
                t0 = time.perf_counter()
                try:
                    raw = manager.triton.infer(mv.name, mv.version, np.stack([images[i] for i in chunk]))
                except Exception:
                    REQUESTS.labels(SERVICE, path, "failed").inc()
                    _recover(manager)
                    raise
                elapsed = time.perf_counter() - t0
                REQUESTS.labels(SERVICE, path, "ok").inc()
                LATENCY.labels(SERVICE, path).observe(elapsed)
                IMAGES.labels(SERVICE, path, str(mv.version)).inc(len(chunk))
                outputs = postprocess(mv.tasks, mv.split(raw), mv.camera_hfov_deg)
                for i, out in zip(chunk, outputs):
                    results[i] = predictions(mv.tasks, out, only)
                    seconds[i] = elapsed
    return mv, results, seconds


def _recover(manager: ModelManager) -> None:
    """A failed call may mean Triton restarted and lost the served versions: load them again, so
    the caller's retry (the consumer's, the client's) finds them."""
    try:
        manager.recover()
    except Exception as exc:  # Triton still away: the retry will ask again
        log.warning("could not reload the served versions into Triton yet", error=repr(exc)[:300])


class SnapshotWorker(ConsumerThread):
    def __init__(self, manager: ModelManager, store, producer: Producer, bootstrap_servers: str, *, group_id: str = SERVICE, batch_size: int = 64, max_batch: int = 64, fetch_threads: int = 8, consumer: BatchConsumer | None = None) -> None:
        self.manager = manager
        self.store = store
        self.producer = producer
        self.max_batch = max_batch
        super().__init__(consumer or BatchConsumer(bootstrap_servers, group_id, [topics.SNAPSHOTS], self.handle, producer, batch_size=batch_size), "inference-worker")
        self._fetch = ThreadPoolExecutor(fetch_threads, thread_name_prefix="inference-fetch")

    # -- consumer handler (BatchConsumer contract) -----------------------------------------------

    def _load(self, record: Record) -> np.ndarray:
        event = record.value
        if not event.snapshot_id or not event.object_key:
            raise RecordError("snapshot_id and object_key are required")
        if event.bucket and event.bucket != self.store.bucket:
            raise RecordError(f"snapshot is in bucket {event.bucket!r}, this service reads {self.store.bucket!r}")
        try:
            data = self.store.get(event.object_key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                raise RecordError(f"snapshot object {event.object_key} does not exist") from None
            raise  # an outage: the batch is retried after a restart, not dead-lettered
        try:
            return decode_snapshot(data, event.content_type, event.frame_id, list(event.metadata.clip_frame_ids))
        except BadImage as exc:
            raise RecordError(f"snapshot {event.snapshot_id}: {exc}") from None

    def handle(self, records: list[Record]) -> None:
        work = [r for r in records if r.value is not None]
        if len(work) < len(records):
            SNAPSHOTS.labels(SERVICE, "skipped").inc(len(records) - len(work))
        if not work:
            return
        images = list(self._fetch.map(self._load, work))  # RecordError -> record-by-record retry -> dead letter
        mv, preds, seconds = score(self.manager, images, "snapshots", self.max_batch)
        for record, pred, elapsed in zip(work, preds, seconds):
            result = events_pb2.InferenceResult(snapshot_id=record.value.snapshot_id, model=mv.ref, predictions=pred)
            result.latency.FromNanoseconds(int(elapsed * 1e9))
            result.inferred_at.GetCurrentTime()
            self.producer.produce(topics.INFERENCE_RESULTS, result.snapshot_id, result)
        self.producer.flush()  # raises DeliveryError: the batch is not committed
        SNAPSHOTS.labels(SERVICE, "scored").inc(len(work))

    # -- thread ----------------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self._fetch.shutdown(wait=False)
