"""The Kafka side of map-vision: consume fleet.telemetry.v1 (group "map-vision", commit after
processing, dead letters), compare every frame with the map, produce Disagreement events keyed by
vehicle_id and MapFeatureUpdated events keyed by feature_id (the compacted copy of the map).

Runs on one thread; the gRPC servicer reads the same MapState under the same lock. Per batch:
validate every frame first (an invalid record raises before anything changed, so the
BatchConsumer's record-by-record retry dead-letters exactly that record), process record by record
(the lock is held for one record, ~100 frames, never a whole batch), then produce, then flush, so
offsets are committed only once every event of the batch is acked (at-least-once; ids are
deterministic, so a redelivered batch produces the same ids).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from longtail import topics
from longtail.kafka import BatchConsumer, ConsumerThread, Producer, Record
from longtail.log import get_logger
from longtail.mapvision.v1 import events_pb2, map_pb2
from longtail.registry import MAP_VISION

from map_vision.mapping import MapState, validate_frame

SERVICE = MAP_VISION.name
log = get_logger(__name__)

DISAGREEMENTS = Counter("longtail_mapvision_disagreements_total", "Map-vision disagreements emitted, by kind", ["service", "kind"])
FEATURES = Gauge("longtail_mapvision_features", "Active (not removed) map features, by source", ["service", "source"])
CANDIDATES = Gauge("longtail_mapvision_candidates", "Fleet observations not (yet) promoted to map features", ["service"])
FRAMES = Counter("longtail_mapvision_frames_total", "Telemetry frames, by outcome (compared, duplicate)", ["service", "outcome"])
FEATURE_CHANGES = Counter("longtail_mapvision_feature_changes_total", "MapFeatureUpdated events published, by change", ["service", "change"])
RECORD_SECONDS = Histogram("longtail_mapvision_record_duration_seconds", "Time to compare one telemetry record (a batch of frames)", ["service"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))

KIND_LABEL = {
    events_pb2.DISAGREEMENT_KIND_MAP_WITHOUT_VISION: "map_without_vision",
    events_pb2.DISAGREEMENT_KIND_VISION_WITHOUT_MAP: "vision_without_map",
    events_pb2.DISAGREEMENT_KIND_ATTRIBUTE_MISMATCH: "attribute_mismatch",
}
SOURCE_LABEL = {map_pb2.FEATURE_SOURCE_SEED: "seed", map_pb2.FEATURE_SOURCE_FLEET: "fleet"}
CHANGE_LABEL = {events_pb2.FEATURE_CHANGE_CREATED: "created", events_pb2.FEATURE_CHANGE_UPDATED: "updated", events_pb2.FEATURE_CHANGE_REMOVED: "removed"}


class MapWorker(ConsumerThread):
    def __init__(
        self,
        state: MapState,
        lock: threading.RLock,
        producer: Producer,
        bootstrap_servers: str,
        on_disagreements: Callable[[list[events_pb2.Disagreement]], None],
        *,
        group_id: str = SERVICE,
        publish_interval_s: float = 5.0,
        batch_size: int = 200,
        consumer: BatchConsumer | None = None,
    ) -> None:
        self.state = state
        self.lock = lock
        self.producer = producer
        self.on_disagreements = on_disagreements
        self.publish_interval_s = publish_interval_s
        super().__init__(consumer or BatchConsumer(bootstrap_servers, group_id, [topics.TELEMETRY], self.handle, producer, batch_size=batch_size), "map-vision-worker")
        self._kind = {k: DISAGREEMENTS.labels(SERVICE, v) for k, v in KIND_LABEL.items()}
        self._changes = {k: FEATURE_CHANGES.labels(SERVICE, v) for k, v in CHANGE_LABEL.items()}
        self._frames = FRAMES.labels(SERVICE, "compared")
        self._duplicates = FRAMES.labels(SERVICE, "duplicate")
        self._record_seconds = RECORD_SECONDS.labels(SERVICE)
        self._next_tick = 0.0

    # -- consumer handler (BatchConsumer contract) -----------------------------------------------

    def handle(self, records: list[Record]) -> None:
        work = []
        for rec in records:
            batch = rec.value
            if batch is None:
                continue  # tombstone: nothing to compare
            vid = batch.vehicle_id or rec.key or ""
            work.append((rec, [(frame, validate_frame(frame, vid)) for frame in batch.frames]))  # InvalidFrame -> dead letter
        for rec, frames in work:
            started = time.perf_counter()
            out: list[events_pb2.Disagreement] = []
            compared = duplicates = 0
            with self.lock:
                for frame, vid in frames:
                    result = self.state.process_frame(frame, vid, rec.timestamp_ms / 1000.0)
                    if result.duplicate:
                        duplicates += 1
                        continue
                    compared += 1
                    out.extend(result.disagreements)
            self._record_seconds.observe(time.perf_counter() - started)
            self._frames.inc(compared)
            if duplicates:
                self._duplicates.inc(duplicates)
            for d in out:
                self.producer.produce(topics.MAP_DISAGREEMENTS, d.vehicle_id, d)
                self._kind[d.kind].inc()
            if out:
                self.on_disagreements(out)
        self.publish()
        self.producer.flush()  # raises DeliveryError: the batch is not committed

    def publish(self, force: bool = False) -> int:
        """Produce the map changes that are due (structural ones at once); returns how many."""
        with self.lock:
            events = self.state.drain(time.time(), self.publish_interval_s, force)
        for e in events:
            self.producer.produce(topics.MAP_FEATURES, e.feature.feature_id, e)
            self._changes[e.change].inc()
        return len(events)

    def update_gauges(self) -> None:
        with self.lock:
            counts = self.state.counts_by_source()
            candidates = len(self.state.candidates)
        for source, label in SOURCE_LABEL.items():
            FEATURES.labels(SERVICE, label).set(counts.get(source, 0))
        CANDIDATES.labels(SERVICE).set(candidates)

    # -- thread (ConsumerThread hooks) ---------------------------------------------------------

    def after_poll(self) -> None:
        if self.last_progress >= self._next_tick:  # periodic: due map changes, gauges
            self._next_tick = self.last_progress + min(1.0, self.publish_interval_s or 1.0)
            if self.publish():
                self.producer.flush()
            self.update_gauges()

    def before_close(self) -> None:
        self.publish(force=True)
        self.producer.flush()
