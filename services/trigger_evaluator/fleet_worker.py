"""Fleet-side trigger evaluation with faust-streaming (on aiokafka), in two co-partitioned stages.

1. `evaluate` — agent over fleet.telemetry.v1 (key vehicle_id). Runs every ACTIVE trigger whose
   site is FLEET or BOTH on each car's frames with the same engine as the cars, keeping each car's
   temporal state in the changelog-backed table `car-trigger-states` (same 6 partitions as the
   source). Fires, and the edge fires cars report, go to triggers.fire-candidates.v1 keyed by
   trigger_id.
2. `decide` — agent over the candidates (key trigger_id). Per trigger version, in the table
   `trigger-budgets`: drops redeliveries (same fire_id), deduplicates fleet-wide (many cars seeing
   the same sign from the same place share a dedup key), and applies the upload budget and the
   per-car rate limit. Emits TriggerFired (with upload_requested or the reason it was suppressed)
   and, for fleet-side fires, a RequestUpload command for the car (with a time-to-live: the gateway
   holds it until the car connects).

Crash safety: candidate and output sends are awaited (acked) before the table is updated, and
tables are restored from their changelogs, so a worker killed with -9 reprocesses from its last
commit: engine state ignores frames it has seen (sequence numbers) and `decide` ignores fire_ids it
has decided, so nothing is lost and nothing is emitted twice for the same decision.

Skipped records: faust-streaming 0.15.3 fetches stream partitions while it restores tables after a
restart; a stale fetch can then move its read offset past records it never delivered, which it
treats as a gap and acks (reproduced by the kill -9 test: ~15% of fires lost). Our topics are
neither compacted nor transactional, so their offsets are contiguous: `ContiguousOffsets` notices a
jump and the agent reads the skipped range itself before going on (docs/fleet-side.md).
"""

from __future__ import annotations

import math
import time
import asyncio
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable

import confluent_kafka
import faust
from google.protobuf.message import DecodeError
from prometheus_client import Counter

from longtail import topics
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2
from longtail.log import get_logger
from longtail.mapvision.v1 import map_pb2
from longtail.triggerlang import CompiledTrigger, EvalContext, FiringOptions, compile_trigger, map_expectations
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2 as S

log = get_logger(__name__)
SERVICE = "trigger-evaluator"
FLEET_SITES = (S.TRIGGER_SITE_FLEET, S.TRIGGER_SITE_BOTH)
UPLOAD_TTL_SECONDS = 3600
DEDUP_CELL_METERS = 25.0
MAX_REMEMBERED_FIRES = 100_000

FRAMES = Counter("longtail_trigger_frames_evaluated_total", "Frames evaluated fleet-side", ["service"])
DECISIONS = Counter("longtail_trigger_decisions_total", "Fire decisions by outcome", ["service", "trigger", "outcome"])


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

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        return int(math.floor(x / self.CELL_M)), int(math.floor(y / self.CELL_M))

    def apply(self, feature_id: str | None, update) -> None:
        old = self._features.pop(feature_id, None) if feature_id else None
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
        cx, cy = self._cell(ego.x, ego.y)
        near = [f for dx in (-1, 0, 1) for dy in (-1, 0, 1) for f in self._cells.get((cx + dx, cy + dy), {}).values()]
        return EvalContext(map_features=map_expectations(near, ego))


class CompiledCatalog:
    """Compiled fleet-side triggers, kept in step with the catalog view."""

    def __init__(self, latest: Callable[[], dict[str, S.Trigger]]) -> None:
        self.latest = latest
        self._compiled: dict[tuple[str, int], CompiledTrigger] = {}

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


class ContiguousOffsets:
    """Per partition, the next offset an agent must see. Tells the agent which records faust skipped
    (to read and process them first) and which it delivers twice (to drop)."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.bootstrap, self.group_id = bootstrap, group_id
        self.next: dict[tuple[str, int], int] = {}

    def forget(self) -> None:
        self.next.clear()  # after a rebalance another worker may have moved the partition on

    def _committed(self, topic: str, partition: int) -> int | None:
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group_id, "enable.auto.commit": False})
        try:
            [tp] = consumer.committed([confluent_kafka.TopicPartition(topic, partition)], timeout=10)
            return tp.offset if tp.offset >= 0 else None
        finally:
            consumer.close()

    def _read(self, topic: str, partition: int, start: int, end: int) -> list[tuple[int, bytes | None, bytes]]:
        consumer = confluent_kafka.Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"{self.group_id}-gap-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
        try:
            consumer.assign([confluent_kafka.TopicPartition(topic, partition, start)])
            records: list[tuple[int, bytes | None, bytes]] = []
            while not records or records[-1][0] < end - 1:
                msg = consumer.poll(10)
                if msg is None:
                    raise RuntimeError(f"cannot re-read {topic}[{partition}] offsets {start}..{end - 1}")
                if msg.error() is None and msg.offset() < end:
                    records.append((msg.offset(), msg.key(), msg.value()))
            return records
        finally:
            consumer.close()

    async def check(self, topic: str, partition: int, offset: int) -> tuple[bool, list[tuple[bytes | None, bytes]]]:
        """(process this record?, skipped records to process before it)."""
        key = (topic, partition)
        expected = self.next.get(key)
        if expected is None:
            expected = await asyncio.to_thread(self._committed, topic, partition)
        if expected is not None and offset < expected:
            return False, []
        skipped = []
        if expected is not None and offset > expected:
            log.warning("faust skipped records; reading them directly", topic=topic, partition=partition, first=expected, last=offset - 1)
            skipped = [(k, v) for _, k, v in await asyncio.to_thread(self._read, topic, partition, expected, offset)]
        self.next[key] = offset + 1
        return True, skipped


async def in_order(stream, offsets: ContiguousOffsets, handle: Callable[[bytes | None, bytes], Awaitable[None]]) -> None:
    async for event in stream.events():
        message = event.message
        process, skipped = await offsets.check(message.topic, message.partition, message.offset)
        for key, value in skipped:
            await handle(key, value)
        if process:
            await handle(message.key, message.value)


def group_progress(bootstrap: str, group_id: str, topic_names: list[str]) -> tuple[int, int]:
    """(lag, committed) summed over the topics' partitions for a consumer group."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        metadata = consumer.list_topics(timeout=10).topics
        parts = [confluent_kafka.TopicPartition(t, p) for t in topic_names for p in metadata[t].partitions]
        lag = committed = 0
        for tp in consumer.committed(parts, timeout=10):
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            done = max(tp.offset, 0)
            lag, committed = lag + max(high - done, 0), committed + done
        return lag, committed
    finally:
        consumer.close()


async def watch_progress(bootstrap: str, set_serving: Callable[[bool], Awaitable[None]], stall_timeout_s: float = 120.0, app_id: str = SERVICE) -> None:
    """Liveness from real progress: with records waiting, committed offsets must move within
    stall_timeout_s, else the worker reports NOT_SERVING (and the liveness probe restarts it)."""
    names = [topics.TELEMETRY.name, topics.FIRE_CANDIDATES.name]
    serving, last_committed, last_move = True, -1, time.monotonic()
    while True:
        await asyncio.sleep(min(10.0, stall_timeout_s / 4))
        try:
            lag, committed = await asyncio.to_thread(group_progress, bootstrap, app_id, names)
        except Exception as exc:  # the broker being away is not this worker's fault
            log.warning("cannot read consumer progress", error=str(exc))
            continue
        if committed != last_committed or lag == 0:
            last_committed, last_move = committed, time.monotonic()
        healthy = time.monotonic() - last_move < stall_timeout_s
        if healthy != serving:
            serving = healthy
            log.warning("fleet worker progress", serving=serving, lag=lag)
            await set_serving(serving)


def uses_map(program: CompiledTrigger) -> bool:
    return any(call.startswith("map_disagreement(") for call in program.calls)


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


def build_app(
    bootstrap: str,
    catalog_view: Callable[[], dict[str, S.Trigger]],
    replication_factor: int = 1,
    app_id: str = SERVICE,
    telemetry_topic: str = topics.TELEMETRY.name,
    candidates_topic: str = topics.FIRE_CANDIDATES.name,
    map_view: MapView | None = None,
) -> faust.App:
    """The worker. Topic names are parameters only so the benchmark can run it on its own topics.
    Without a map view, map_disagreement() is false (no map knowledge)."""
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",  # tables live in memory and are rebuilt from their changelog topics
        # faust creates a data directory even for memory tables; the working directory may be read-only.
        datadir=os.path.join(tempfile.gettempdir(), f"{app_id}-data"),
        topic_replication_factor=replication_factor,
        topic_partitions=topics.TELEMETRY.partitions,
        web_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=100,
        broker_commit_interval=1.0,
        # A worker killed with -9 holds its partitions until its session times out: keep it short.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    raw = dict(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    telemetry = app.topic(telemetry_topic, partitions=topics.TELEMETRY.partitions, **raw)
    candidates = app.topic(candidates_topic, partitions=topics.FIRE_CANDIDATES.partitions, **raw)
    fired_topic = app.topic(topics.TRIGGERS_FIRED.name, **raw)
    commands_topic = app.topic(topics.VEHICLE_COMMANDS.name, **raw)
    dead_letters = app.topic(topics.DEAD_LETTERS.name, **raw)
    car_states = app.Table("car-trigger-states", default=dict, partitions=topics.TELEMETRY.partitions)
    budgets = app.Table("trigger-budgets", default=dict, partitions=topics.FIRE_CANDIDATES.partitions)
    compiled = CompiledCatalog(catalog_view)
    frames_metric = FRAMES.labels(SERVICE)

    async def dead_letter(source: str, key: bytes | None, value: bytes, error: str) -> None:
        from longtail.ops.v1 import events_pb2 as ops_events

        letter = ops_events.DeadLetter(source_topic=source, key=key or b"", value=value or b"", error=error[:4000], consumer_group=app_id)
        letter.failed_at.GetCurrentTime()
        await (await dead_letters.send(key=source.encode(), value=letter.SerializeToString()))

    async def evaluate_batch(key: bytes | None, value: bytes) -> None:
        try:
            batch = fleet_events.TelemetryBatchEvent.FromString(value)
        except DecodeError as exc:
            await dead_letter(telemetry_topic, key, value, f"cannot decode TelemetryBatchEvent: {exc}")
            return
        vehicle = batch.vehicle_id
        active = compiled.active()
        saved = dict(car_states[vehicle])
        states = {t.trigger_id: c.load_state(saved.get(t.trigger_id)) for t, c in active}
        pending = []
        map_needed = map_view is not None and any(uses_map(p) for _, p in active)
        for frame in sorted(batch.frames, key=lambda f: f.sequence):
            if frame.vehicle_id != vehicle:
                continue  # the gateway guarantees it; a foreign frame would corrupt the state
            frames_metric.inc()
            context = map_view.context(frame.ego) if map_needed else None
            for trigger, program in active:
                fire = program.evaluate(states[trigger.trigger_id], frame, context)
                if fire is not None:
                    event = trigger_events.TriggerFired(
                        fire_id=fire.fire_id, trigger_id=trigger.trigger_id, trigger_version=trigger.version, vehicle_id=vehicle,
                        frame_id=frame.frame_id, fired_at=frame.captured_at, source=trigger_events.FIRE_SOURCE_FLEET, dedup_key=dedup_key(trigger.trigger_id, frame), score=1.0,
                    )
                    pending.append(await candidates.send(key=trigger.trigger_id.encode(), value=event.SerializeToString()))
            for edge in frame.edge_fires:
                event = trigger_events.TriggerFired(
                    fire_id=edge.fire_id, trigger_id=edge.trigger_id, trigger_version=edge.trigger_version, vehicle_id=vehicle,
                    frame_id=frame.frame_id, fired_at=frame.captured_at, source=trigger_events.FIRE_SOURCE_EDGE, dedup_key=dedup_key(edge.trigger_id, frame), score=edge.score,
                )
                pending.append(await candidates.send(key=edge.trigger_id.encode(), value=event.SerializeToString()))
        for future in pending:
            await future  # acked before the state that produced them is saved
        log.debug("batch evaluated", vehicle=vehicle, frames=len(batch.frames), triggers=len(active), candidates=len(pending))
        if active or saved:  # no changelog write for cars no trigger watches
            car_states[vehicle] = {t.trigger_id: c.dump_state(states[t.trigger_id]) for t, c in active}

    async def decide_upload(key: bytes | None, value: bytes) -> None:
        try:
            fired = trigger_events.TriggerFired.FromString(value)
        except DecodeError as exc:
            await dead_letter(candidates_topic, key, value, f"cannot decode TriggerFired: {exc}")
            return
        budget_key = f"{fired.trigger_id}/{fired.trigger_version}"
        budget = dict(budgets[budget_key])
        seen = budget.setdefault("seen", {})
        if fired.fire_id in seen:
            return  # a redelivered candidate: already decided
        trigger = catalog_view().get(fired.trigger_id)
        now = time.time()
        granted, reason = decide(trigger, fired, budget, now)
        if fired.source == trigger_events.FIRE_SOURCE_EDGE:
            # Edge fires are uploaded by the car within its per-car limit; they still spend budget.
            fired.upload_requested, fired.suppressed_reason = False, "uploaded_by_car" if granted else reason
        else:
            fired.upload_requested, fired.suppressed_reason = granted, reason
        DECISIONS.labels(SERVICE, fired.trigger_id, "requested" if fired.upload_requested else (fired.suppressed_reason or "edge")).inc()
        sent = [await fired_topic.send(key=fired.vehicle_id.encode(), value=fired.SerializeToString())]
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
            sent.append(await commands_topic.send(key=fired.vehicle_id.encode(), value=vc.SerializeToString()))
        for future in sent:
            await future
        seen[fired.fire_id] = now
        if len(seen) > MAX_REMEMBERED_FIRES:
            for old in sorted(seen, key=seen.get)[: len(seen) - MAX_REMEMBERED_FIRES]:
                del seen[old]
        budgets[budget_key] = budget

    offsets = ContiguousOffsets(bootstrap, app_id)

    @app.on_partitions_assigned.connect
    async def _reassigned(app, assigned, **kwargs) -> None:
        offsets.forget()

    @app.agent(telemetry)
    async def evaluate(stream):
        await in_order(stream, offsets, evaluate_batch)

    @app.agent(candidates)
    async def decide_uploads(stream):
        await in_order(stream, offsets, decide_upload)

    return app
