"""Fleet-side trigger evaluation: two consume-process-produce stages over changelog-backed tables.

1. evaluate — over fleet.telemetry.v1 (key vehicle_id). Runs every ACTIVE trigger whose site is
   FLEET or BOTH on each car's frames with the same engine as the cars; each car's temporal state
   lives in the table `car-trigger-states` (partitioned like the telemetry). Fires, and the edge
   fires cars report, go to triggers.fire-candidates.v1 keyed by trigger_id.
2. decide — over the candidates (key trigger_id). Per trigger version, in the table
   `trigger-budgets`: drops redeliveries (same fire_id), deduplicates fleet-wide (many cars seeing
   the same sign from the same place share a dedup key), applies the upload budget and the per-car
   rate limit. Emits TriggerFired (upload_requested, or why not) and, for fleet-side fires, a
   RequestUpload command for the car with a time-to-live (the gateway holds it until the car connects).

Tables (longtail.streams) are dicts in memory, each partition backed by a compacted changelog topic
(`<group>-<table>-changelog`, same partition numbers as the input) and restored from it when the
partition is assigned — the Kafka Streams / faust table model. Per batch the stage (1) produces its
outputs and waits for the acks, (2) writes the changed table entries and waits, (3) commits the
input offsets. A worker killed at any point restarts from its last commit with tables never ahead
of the outputs they caused: the engine ignores frames it has seen (sequence numbers) and decide
ignores fire ids it has decided, so nothing is lost and nothing is decided twice.

Why not faust-streaming (the design's choice, still the benchmark's baseline): 0.15.3 lost fires
after a kill -9 in our test — during table recovery it fetches the stream partitions, a stale fetch
moves its read offset past records the agent never receives, and it acks them as a gap; under
continuous load it also cannot commit (its commit timer overlaps for seconds). docs/fleet-side.md.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable

from google.protobuf.message import DecodeError
from prometheus_client import Counter

from longtail import topics
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2
from longtail.kafka import Producer
from longtail.log import get_logger
from longtail.mapvision.v1 import map_pb2
from longtail.registry import TRIGGER_EVALUATOR
from longtail.streams import ChangelogTable, Stage
from longtail.triggerlang import CompiledTrigger, EvalContext, FiringOptions, compile_trigger, map_expectations
from longtail.triggerlang.vector import BatchEvaluator, CarFrames
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2 as S

log = get_logger(__name__)
SERVICE = TRIGGER_EVALUATOR.name
FLEET_SITES = (S.TRIGGER_SITE_FLEET, S.TRIGGER_SITE_BOTH)
UPLOAD_TTL_SECONDS = 3600
DEDUP_CELL_METERS = 25.0
MAX_REMEMBERED_FIRES = 100_000

FRAMES = Counter("longtail_trigger_frames_evaluated_total", "Frames evaluated fleet-side", ["service"])
EVALUATIONS = Counter(
    "longtail_trigger_evaluations_total", "(frame, trigger) evaluations fleet-side by path: columns (all triggers over a poll) or frame_by_frame (track_flicker, first_seen, map_disagreement, unnumbered frames)", ["service", "path"]
)
DECISIONS = Counter("longtail_trigger_decisions_total", "Fire decisions by outcome", ["service", "trigger", "outcome"])
DECISION_OUTCOMES = ("requested", "uploaded_by_car", "unknown_or_superseded_version", "trigger_not_active", "trigger_expired", "duplicate_event", "budget_exhausted", "per_car_rate_limit")


def dedup_key(trigger_id: str, frame: fleet_pb2.Frame) -> str:
    """Cars passing the same place in the same direction see the same long-tail object: one
    budgeted upload buys one distinct example."""
    heading = int(((frame.ego.heading + math.pi) / (2 * math.pi)) * 8) % 8
    return f"{trigger_id}/{int(frame.ego.x // DEDUP_CELL_METERS)}/{int(frame.ego.y // DEDUP_CELL_METERS)}/{heading}"


class MapView:
    """The low-definition map as map-vision publishes it (mapvision.features.v1, compacted), for
    map_disagreement() fleet-side: per frame, the features the car should see from its pose."""

    CELL_M = 64.0  # >= the 60 m expectation range: a pose looks at its cell and the 8 around it

    def __init__(self) -> None:
        self._features: dict[str, map_pb2.MapFeature] = {}
        self._cells: dict[tuple[int, int], dict[str, map_pb2.MapFeature]] = {}
        # Updated on the event loop (topic follower), read by the worker and backtest threads.
        self._lock = threading.Lock()

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        return int(math.floor(x / self.CELL_M)), int(math.floor(y / self.CELL_M))

    def apply(self, feature_id: str | None, update) -> None:
        with self._lock:
            self._apply(feature_id, update)

    def _apply(self, feature_id: str | None, update) -> None:
        if feature_id:
            old = self._features.pop(feature_id, None)
            if old is not None:
                self._cells.get(self._cell(old.x, old.y), {}).pop(feature_id, None)
        if update is None or update.feature.removed:
            return
        feature = update.feature
        self._features[feature.feature_id] = feature
        self._cells.setdefault(self._cell(feature.x, feature.y), {})[feature.feature_id] = feature

    def __len__(self) -> int:
        return len(self._features)

    def context(self, ego) -> EvalContext:
        if not (math.isfinite(ego.x) and math.isfinite(ego.y) and math.isfinite(ego.heading)):
            return EvalContext(map_features=None)  # no usable pose: no map knowledge
        cx, cy = self._cell(ego.x, ego.y)
        with self._lock:
            near = [f for dx in (-1, 0, 1) for dy in (-1, 0, 1) for f in self._cells.get((cx + dx, cy + dy), {}).values()]
        return EvalContext(map_features=map_expectations(near, ego))


class CompiledCatalog:
    """Compiled fleet-side triggers, kept in step with the catalog view."""

    def __init__(self, latest: Callable[[], dict[str, S.Trigger]]) -> None:
        self.latest = latest
        self._compiled: dict[tuple[str, int], CompiledTrigger] = {}
        self._evaluator: tuple[list[CompiledTrigger], BatchEvaluator] | None = None

    def evaluator(self, active: list[tuple[S.Trigger, CompiledTrigger]]) -> BatchEvaluator:
        """The column evaluator of these triggers (rebuilt when the active set changes)."""
        programs = [c for _, c in active]
        if self._evaluator is None or self._evaluator[0] != programs:
            self._evaluator = (programs, BatchEvaluator(programs))
        return self._evaluator[1]

    def active(self) -> list[tuple[S.Trigger, CompiledTrigger]]:
        result = []
        now = time.time()
        for trigger in self.latest().values():
            if trigger.state != S.TRIGGER_STATE_ACTIVE or trigger.spec.site not in FLEET_SITES:
                continue
            if trigger.spec.HasField("starts_at") and trigger.spec.starts_at.ToSeconds() > now:
                continue
            key = (trigger.trigger_id, trigger.version)
            compiled = self._compiled.get(key)
            if compiled is None:
                try:
                    compiled = compile_trigger(trigger.spec.expression, FiringOptions.from_spec(trigger.spec), trigger.trigger_id, trigger.version)
                except ValueError as exc:  # the catalog validated it; a newer engine might not
                    log.error("cannot compile trigger", trigger=trigger.trigger_id, error=str(exc))
                    continue
                self._compiled[key] = compiled
            result.append((trigger, compiled))
        return result


def _decode(value: bytes | None) -> fleet_events.TelemetryBatchEvent:
    try:
        return fleet_events.TelemetryBatchEvent.FromString(value or b"")
    except DecodeError as exc:
        raise ValueError(f"cannot decode TelemetryBatchEvent: {exc}") from None  # dead-lettered by the stage


class _Car:
    """One car's telemetry records of a poll: its frames in evaluation order (each record's
    frames by sequence; frames of another vehicle dropped: they would corrupt the state)."""

    def __init__(self, partition: int, vehicle: str, index: int = 0) -> None:
        self.partition, self.vehicle, self.index = partition, vehicle, index  # index: in the poll's cars
        self.records: list = []
        self.frames: list = []
        self.record_ends: list[int] = []
        self.saved = False

    def add(self, msg, batch: fleet_events.TelemetryBatchEvent) -> int:
        """Append a record's frames; returns the record's number for this car."""
        vehicle = self.vehicle
        self.records.append(msg)
        self.frames.extend(f for f in sorted(batch.frames, key=_sequence) if f.vehicle_id == vehicle)
        self.record_ends.append(len(self.frames))
        return len(self.records) - 1


def _sequence(frame) -> int:
    return frame.sequence


def decide(trigger: S.Trigger | None, fired: trigger_events.TriggerFired, budget: dict, now: float) -> tuple[bool, str]:
    """Pure decision over the trigger-version's budget record (mutated when an upload is granted)."""
    if trigger is None or trigger.version != fired.trigger_version:
        return False, "unknown_or_superseded_version"
    if trigger.state != S.TRIGGER_STATE_ACTIVE:
        return False, "trigger_not_active"
    spec = trigger.spec
    if spec.HasField("expires_at") and spec.expires_at.ToSeconds() <= now:
        return False, "trigger_expired"
    key = fired.dedup_key or fired.fire_id
    if key in budget.setdefault("dedup", {}):
        return False, "duplicate_event"
    if budget.get("uploads", 0) >= spec.upload_budget:
        return False, "budget_exhausted"
    car_times = [t for t in budget.setdefault("cars", {}).get(fired.vehicle_id, []) if t > now - 3600]
    if len(car_times) >= spec.max_uploads_per_car_hour:
        return False, "per_car_rate_limit"
    budget["dedup"][key] = now
    budget["uploads"] = budget.get("uploads", 0) + 1
    budget["cars"][fired.vehicle_id] = [*car_times, now]
    return True, ""


class FleetWorker:
    """The two stages. Topic names are parameters only so the benchmark can use its own topics."""

    def __init__(
        self,
        bootstrap: str,
        catalog_view: Callable[[], dict[str, S.Trigger]],
        replication_factor: int = 1,
        group_id: str = SERVICE,
        telemetry_topic: str = topics.TELEMETRY.name,
        candidates_topic: str = topics.FIRE_CANDIDATES.name,
        map_view: MapView | None = None,
        min_insync_replicas: int | None = None,
    ) -> None:
        self.catalog_view, self.map_view, self.group_id = catalog_view, map_view, group_id
        self.telemetry_topic, self.candidates_topic = telemetry_topic, candidates_topic
        self.compiled = CompiledCatalog(catalog_view)
        self.producer = Producer(bootstrap, SERVICE, **{"linger.ms": 5})
        self.car_states = ChangelogTable("car-trigger-states", bootstrap, group_id, self.producer)
        self.budgets = ChangelogTable("trigger-budgets", bootstrap, group_id, self.producer)
        self.car_states.ensure_topic(telemetry_topic, replication_factor, min_insync_replicas)
        self.budgets.ensure_topic(candidates_topic, replication_factor, min_insync_replicas)
        self.stages = [
            Stage("evaluate", bootstrap, group_id, telemetry_topic, self.car_states, self.evaluate_poll, self.producer, SERVICE),
            Stage("decide", bootstrap, f"{group_id}-decide", candidates_topic, self.budgets, lambda records, stage: stage.each(records, self.decide), self.producer, SERVICE),
        ]
        self._frames = FRAMES.labels(SERVICE)
        for path in ("columns", "frame_by_frame"):
            EVALUATIONS.labels(SERVICE, path)  # both series from the start, at 0
        self._decided: set[str] = set()

    def start(self) -> FleetWorker:
        for stage in self.stages:
            stage.start()
        return self

    def stop(self) -> None:
        for stage in self.stages:
            stage.stop()
        self.producer.close()

    @property
    def error(self) -> BaseException | None:
        return next((s.error for s in self.stages if s.error is not None), None)

    @property
    def alive(self) -> bool:
        return all(stage.alive for stage in self.stages)

    @property
    def last_progress(self) -> float:
        """The slower stage's last poll: the worker progresses only when both do."""
        return min(stage.last_progress for stage in self.stages)

    def evaluate_poll(self, records: list, stage: Stage) -> None:
        """All telemetry records of one poll together: each car's frames in record order, every
        active trigger over all of them at once (`BatchEvaluator`, column by column). Outputs
        and states are exactly those of evaluating record by record, frame by frame."""
        cars: dict[tuple[int, str], _Car] = {}
        order: list[tuple[_Car, int]] = []  # (car, its record number) in the order the records came
        for msg in records:
            try:
                batch = _decode(msg.value())
            except ValueError as exc:
                stage.dead_letter(msg, exc)
                continue
            key = (msg.partition(), batch.vehicle_id)
            car = cars.get(key)
            if car is None:
                car = cars[key] = _Car(msg.partition(), batch.vehicle_id, len(cars))
            order.append((car, car.add(msg, batch)))
        if not cars:
            return
        active = self.compiled.active()
        try:
            self._evaluate_cars(list(cars.values()), order, active)
        except Exception:  # must not cost records: redo them one by one, frame by frame (no state was written yet)
            log.exception("evaluating a poll together failed; evaluating its records one by one, frame by frame")
            stage.each([car.records[r] for car, r in order], lambda partition, key, value: self._evaluate_record(partition, value, active))

    def _evaluate_record(self, partition: int, value: bytes, active: list[tuple[S.Trigger, CompiledTrigger]]) -> None:
        batch = _decode(value)
        car = _Car(partition, batch.vehicle_id)
        self._evaluate_cars([car], [(car, car.add(None, batch))], active, columns=False)

    def _evaluate_cars(self, cars: list[_Car], order: list[tuple[_Car, int]], active: list[tuple[S.Trigger, CompiledTrigger]], columns: bool = True) -> None:
        evaluator = self.compiled.evaluator(active)
        map_view = self.map_view if any(evaluator.needs_context) else None
        context = (lambda frame: map_view.context(frame.ego)) if map_view is not None else None
        loaded = []
        for car in cars:
            saved = self.car_states.get(car.partition, car.vehicle)
            loaded.append([c.load_state(saved.get(t.trigger_id)) for t, c in active] if active else [])
            car.saved = bool(saved)
        before = dict(evaluator.evaluations)
        fires = evaluator.run([CarFrames(car.frames, states, context) for car, states in zip(cars, loaded)], columns) if active else []
        for path, count in evaluator.evaluations.items():
            if count > before[path]:
                EVALUATIONS.labels(SERVICE, path).inc(count - before[path])
        by_frame: dict[tuple[int, int], list] = {}
        for fire in fires:
            by_frame.setdefault((fire.car, fire.frame), []).append(fire)
        # Outputs in record order, each frame's fires in trigger order, then the frame's edge fires.
        for car, r in order:
            c = car.index
            for i in range(car.record_ends[r - 1] if r else 0, car.record_ends[r]):
                frame = car.frames[i]
                for fire in by_frame.get((c, i), ()):
                    trigger = active[fire.trigger][0]
                    self._candidate(trigger.trigger_id, trigger.version, fire.fire.fire_id, car.vehicle, frame, trigger_events.FIRE_SOURCE_FLEET, 1.0)
                for edge in frame.edge_fires:
                    self._candidate(edge.trigger_id, edge.trigger_version, edge.fire_id, car.vehicle, frame, trigger_events.FIRE_SOURCE_EDGE, edge.score)
        for car, states in zip(cars, loaded):
            self._frames.inc(len(car.frames))
            if active or car.saved:  # no changelog write for cars no trigger watches
                self.car_states.set(car.partition, car.vehicle, {t.trigger_id: c.dump_state(s) for (t, c), s in zip(active, states)})

    def _candidate(self, trigger_id: str, version: int, fire_id: str, vehicle: str, frame, source, score: float) -> None:
        event = trigger_events.TriggerFired(
            fire_id=fire_id,
            trigger_id=trigger_id,
            trigger_version=version,
            vehicle_id=vehicle,
            frame_id=frame.frame_id,
            fired_at=frame.captured_at,
            source=source,
            dedup_key=dedup_key(trigger_id, frame),
            score=score,
        )
        self.producer.produce_bytes(self.candidates_topic, trigger_id, event.SerializeToString())

    def decide(self, partition: int, key: bytes | None, value: bytes) -> None:
        try:
            fired = trigger_events.TriggerFired.FromString(value or b"")
        except DecodeError as exc:
            raise ValueError(f"cannot decode TriggerFired: {exc}") from None  # dead-lettered by the stage
        budget_key = f"{fired.trigger_id}/{fired.trigger_version}"
        budget = json.loads(json.dumps(self.budgets.get(partition, budget_key)))  # a copy: the table changes only through set()
        seen = budget.setdefault("seen", {})
        if fired.fire_id in seen:
            return  # a redelivered candidate: already decided
        trigger = self.catalog_view().get(fired.trigger_id)
        now = time.time()
        granted, reason = decide(trigger, fired, budget, now)
        if fired.source == trigger_events.FIRE_SOURCE_EDGE:
            # Edge fires are uploaded by the car within its per-car limit; they still spend budget.
            fired.upload_requested, fired.suppressed_reason = False, "uploaded_by_car" if granted else reason
        else:
            fired.upload_requested, fired.suppressed_reason = granted, reason
        if fired.trigger_id not in self._decided:  # every outcome of a new trigger at 0: "none suppressed" is data too
            self._decided.add(fired.trigger_id)
            for outcome in DECISION_OUTCOMES:
                DECISIONS.labels(SERVICE, fired.trigger_id, outcome)
        DECISIONS.labels(SERVICE, fired.trigger_id, "requested" if fired.upload_requested else (fired.suppressed_reason or "edge")).inc()
        self.producer.produce(topics.TRIGGERS_FIRED, fired.vehicle_id, fired)
        if fired.upload_requested:
            command = fleet_pb2.Command(command_id=f"upload/{fired.fire_id}")
            command.issued_at.GetCurrentTime()
            command.expires_at.FromSeconds(int(now + UPLOAD_TTL_SECONDS))
            request = command.request_upload
            request.frame_id, request.trigger_id, request.trigger_version, request.fire_id = fired.frame_id, fired.trigger_id, fired.trigger_version, fired.fire_id
            if trigger is not None:
                request.capture_window.CopyFrom(trigger.spec.capture_window)
                request.priority = trigger.spec.priority
            request.deadline.CopyFrom(command.expires_at)
            vc = fleet_events.VehicleCommand(vehicle_id=fired.vehicle_id, command=command, expires_at=command.expires_at, issued_by=SERVICE)
            self.producer.produce(topics.VEHICLE_COMMANDS, fired.vehicle_id, vc)
        seen[fired.fire_id] = now
        if len(seen) > MAX_REMEMBERED_FIRES:
            for old in sorted(seen, key=seen.get)[: len(seen) - MAX_REMEMBERED_FIRES]:
                del seen[old]
        self.budgets.set(partition, budget_key, budget)
