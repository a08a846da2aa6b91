"""What every drill runs: simulated cars through a real gateway, a real trigger-evaluator's
fleet-side worker deciding a fleet trigger on their telemetry, and the counting afterwards.

The cars are the simulator's own session client (`fleet_sim.car_client.CarLink`: it keeps every
batch until the gateway acks it, after Kafka did, and resends what was not acked after a
reconnect). Every car's frames carry a marker only this run uses, so the trigger ignores
everything else on the topics; a stop sign on every twentieth frame makes a rising edge, a fire,
per twenty frames (far more than a real trigger fires: the decide stage is loaded too), one
upload per car and hour (the other fires are decided as over that limit, no command sent). At the end the drill counts from the topics themselves:
acknowledged frames missing from fleet.telemetry.v1, frames stored twice, fires missing against
the same trigger evaluated offline over the acknowledged frames, fires decided two ways.
The counting waits until the fleet worker has committed everything (both its stages' lag 0), so
a fire still queued is not counted as lost. A sampler records, every half second, the gateway's
and the evaluator's RSS and the fleet worker's lag.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import confluent_kafka

from longtail import topics
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.kafka import BatchConsumer, Producer, start_group_at_end
from longtail.log import get_logger
from longtail.registry import GATEWAY, TRIGGER_EVALUATOR
from longtail.triggerlang import FiringOptions, compile_trigger
from longtail.triggers.v1 import triggers_pb2 as T
from longtail.triggers.v1 import triggers_pb2_grpc

from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess

log = get_logger(__name__)

FLEET_SECRET = "drill-fleet-secret-0123456789abcdefghij"
OPERATOR_SECRET = "drill-operator-secret-0123456789abcdefg"
FRAMES_PER_BATCH = 10
# The fleet worker's consumer groups: evaluate (fleet.telemetry.v1), decide (the fire candidates).
WORKER_GROUPS = (("trigger-evaluator", topics.TELEMETRY), ("trigger-evaluator-decide", topics.FIRE_CANDIDATES))


@dataclass
class Counts:
    """What the topics hold after a drill, against what the cars had acknowledged."""

    frames_submitted: int = 0
    frames_acked: int = 0
    acked_frames_lost: int = 0  # acknowledged to a car, not in fleet.telemetry.v1 (must be 0)
    frames_stored_twice: int = 0  # a batch resent after a lost ack: at-least-once, harmless downstream
    fires_expected: int = 0  # the trigger evaluated offline over the acknowledged frames
    fires_found: int = 0
    fires_lost: int = 0  # must be 0
    fires_conflicting: int = 0  # one fire id decided two ways (must be 0)
    fire_records_repeated: int = 0  # the same decision published again after a redelivery
    ack_stall_s: float = 0.0  # longest time no car got an ack while cars were sending ...
    ack_stall_at_s: float = 0.0  # ... and when it began (seconds from the first frame)
    telemetry_stall_s: float = 0.0  # longest gap between records arriving on fleet.telemetry.v1
    sessions: int = 0
    resent_batches: int = 0
    car_errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Sample:
    t: float  # seconds from the first frame
    gateway_rss_mb: float
    evaluator_rss_mb: float
    worker_lag: int  # records the fleet worker has not committed, both stages
    frames_submitted: int  # by the cars so far
    frames_acked: int


def rss_mb(pid: int | None) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, TypeError):
        pass
    return 0.0


def frames(vehicle: str, marker: float, first: int, count: int) -> list:
    batch = telemetry_batch(vehicle, first, count, detections=1)
    for frame in batch.frames:
        frame.ego.y = marker
        if frame.sequence % 20:
            del frame.detections[:]
    return list(batch.frames)


def expected_fires(trigger_id: str, expression: str, frames_by_car: dict[str, list]) -> set[str]:
    program = compile_trigger(expression, FiringOptions(), trigger_id, 1)
    fires = set()
    for car_frames in frames_by_car.values():
        state = program.new_state()
        for frame in sorted(car_frames, key=lambda f: f.sequence):
            fire = program.evaluate(state, frame)
            if fire is not None:
                fires.add(fire.fire_id)
    return fires


class TopicWatch:
    """Reads a topic from its current end in a thread, keeping the records `keep` selects, their
    arrival times (time.monotonic) and their Kafka timestamps (ms)."""

    def __init__(self, bootstrap: str, topic, keep: Callable) -> None:
        self._keep = keep
        self._seen: set[tuple[int, int]] = set()
        self.reader_errors = 0
        self.records: list = []
        self.arrivals: list[float] = []
        self.timestamps_ms: list[int] = []
        self._stop = threading.Event()
        quiet = {"log_level": 2}  # brokers going away is a drill's point: librdkafka's connection errors are expected
        group = f"drill-{uuid.uuid4().hex[:8]}"
        _retrying(lambda: start_group_at_end(bootstrap, group, [topic]))  # from now on: not the topic's history
        self._producer = Producer(bootstrap, "drill-reader", **quiet)
        self._consumer = BatchConsumer(bootstrap, group, [topic], self._take, self._producer, **quiet)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _take(self, records) -> None:
        now = time.monotonic()
        for r in records:
            if (r.partition, r.offset) in self._seen:  # read again after a failed commit: the same stored record
                continue
            self._seen.add((r.partition, r.offset))
            if self._keep(r.value):
                self.arrivals.append(now)
                self.timestamps_ms.append(r.timestamp_ms)
                self.records.append(r.value)  # last: a reader zipping the lists sees complete rows

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._consumer.poll_once()
            except confluent_kafka.KafkaException as exc:  # a commit while a broker is away (e.g. COORDINATOR_LOAD_IN_PROGRESS): read on
                self.reader_errors += 1
                log.warning("drill reader: %s; reading on", exc)
                time.sleep(0.2)

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()
        self._producer.close()
        return self.records


def group_lag(bootstrap: str, group: str, consumed) -> int:
    """A consumer group's lag over the topics it reads: high watermarks minus committed offsets."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False, "log_level": 2})
    try:
        lag = 0
        for topic in consumed:
            parts = [confluent_kafka.TopicPartition(topic.name, p) for p in range(topic.partitions)]
            for tp in consumer.committed(parts, timeout=10):
                _low, high = consumer.get_watermark_offsets(tp, timeout=10)
                lag += high - max(tp.offset, 0)
        return lag
    finally:
        consumer.close()


def worker_lag(bootstrap: str) -> int:
    """The fleet worker's lag, both stages."""
    return sum(group_lag(bootstrap, group, [topic]) for group, topic in WORKER_GROUPS)


def _retrying(call: Callable, seconds: float = 30.0):
    """A call to a cluster that has just started (or lost a broker) may fail for a moment
    (e.g. _DESTROY_BROKER while the bootstrap connections are replaced): retried for `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except confluent_kafka.KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class DrillLoop:
    """The gateway and the trigger-evaluator as real processes on `kafka_env`, a fleet trigger,
    the cars, the sampler and the counting. Use as a context manager."""

    def __init__(self, kafka_env: dict[str, str], gateway_env: dict[str, str] | None = None, say: Callable[[str], None] = print) -> None:
        self.kafka_env, self.say = kafka_env, say
        self.bootstrap = kafka_env["KAFKA_BOOTSTRAP_SERVERS"]
        self.evaluator = ServiceProcess(TRIGGER_EVALUATOR.package, TRIGGER_EVALUATOR.grpc, {**kafka_env, "OPERATOR_TOKEN_SECRET": OPERATOR_SECRET})
        self.gateway = ServiceProcess(GATEWAY.package, GATEWAY.grpc, {**kafka_env, "FLEET_TOKEN_SECRET": FLEET_SECRET, **(gateway_env or {})})
        self.marker = float(uuid.uuid4().int % 100_000) + 0.5
        self.trigger_id = f"drill-{uuid.uuid4().hex[:8]}"
        self.expression = f"count(stop_sign) >= 1 and ego.y == {self.marker}"
        self.samples: list[Sample] = []
        self.counts = Counts()
        self.submitted: dict[str, list] = {}
        self.frames_submitted = 0

    def __enter__(self) -> DrillLoop:
        try:
            for group, topic in WORKER_GROUPS:  # this run's records only: earlier runs' backlog is not the drill's
                _retrying(lambda g=group, t=topic: start_group_at_end(self.bootstrap, g, [t]))
            self.evaluator.start(timeout=120)
            self.gateway.start(timeout=120)
            auth = [("authorization", f"Bearer {issue_token('drill', OPERATOR_SECRET, audience=OPERATOR_AUDIENCE)}")]
            with self.evaluator.channel() as channel:
                api = triggers_pb2_grpc.TriggerCatalogServiceStub(channel)
                # one upload per car and hour, the other fires decided as over that limit; a budget
                # never spent (a used-up budget retires the trigger by rule: no more fires to count)
                spec = T.TriggerSpec(name=self.trigger_id, expression=self.expression, site=T.TRIGGER_SITE_FLEET, task="stop_sign", upload_budget=1_000_000, max_uploads_per_car_hour=1)
                api.CreateTrigger(T.CreateTriggerRequest(trigger_id=self.trigger_id, spec=spec), metadata=auth, timeout=10)
                api.ActivateTrigger(T.ActivateTriggerRequest(trigger_id=self.trigger_id), metadata=auth, timeout=10)
            time.sleep(1.0)  # the worker's catalog view follows the catalog topic
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.gateway.stop()
        self.evaluator.stop()

    def run(self, cars: int, seconds: float, rate: Callable[[float], float], beside: Callable[[float], Awaitable[None]] | None = None) -> Counts:
        """Every car submits one batch of FRAMES_PER_BATCH frames per tick, `rate(t)` ticks per
        second (t from the first frame), for `seconds`; `beside(start)` runs alongside (faults).
        Then the cars drain and everything is counted."""
        vehicles = [f"drill-{i}-{uuid.uuid4().hex[:6]}" for i in range(cars)]
        ours = set(vehicles)
        telemetry = TopicWatch(self.bootstrap, topics.TELEMETRY, lambda v: v.vehicle_id in ours)
        fired = TopicWatch(self.bootstrap, topics.TRIGGERS_FIRED, lambda v: v.trigger_id == self.trigger_id)
        sampling = threading.Event()
        start = time.monotonic()
        sampler = threading.Thread(target=self._sample, args=(start, sampling), daemon=True)
        sampler.start()
        try:
            self.submitted = asyncio.run(self._drive(vehicles, seconds, rate, start, beside))
            expected = expected_fires(self.trigger_id, self.expression, self.submitted)
            want = {f.frame_id for car_frames in self.submitted.values() for f in car_frames}
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:  # until all is there, or the worker has committed everything
                if want <= {f.frame_id for e in list(telemetry.records) for f in e.frames} and expected <= {f.fire_id for f in list(fired.records)}:
                    break
                if self.samples and self.samples[-1].worker_lag == 0 and self.samples[-1].t > time.monotonic() - start - 1:
                    time.sleep(3.0)  # its last outputs on their way to our reader
                    break
                time.sleep(0.5)
            time.sleep(2.0)  # a little longer: would reveal extra records
        finally:
            stored = [f.frame_id for e in telemetry.stop() for f in e.frames]
            fires = fired.stop()
            sampling.set()
            sampler.join(10)
        c = self.counts
        c.frames_submitted = len(want)
        c.acked_frames_lost = len(want - set(stored))
        c.frames_stored_twice = len(stored) - len(set(stored))
        decisions = defaultdict(set)
        for f in fires:
            decisions[f.fire_id].add((f.upload_requested, f.suppressed_reason))
        c.fires_expected, c.fires_found = len(expected), len(decisions)
        c.fires_lost = len(expected - set(decisions))
        c.fires_conflicting = sum(len(d) > 1 for d in decisions.values())
        c.fire_records_repeated = len(fires) - len(decisions)
        c.telemetry_stall_s = round(max((b - a for a, b in zip(telemetry.arrivals, telemetry.arrivals[1:], strict=False)), default=0.0), 2)
        return c

    def _sample(self, start: float, done: threading.Event) -> None:
        while not done.wait(0.5):
            try:
                lag = worker_lag(self.bootstrap)
            except confluent_kafka.KafkaException:  # a broker down: the next sample will tell
                lag = self.samples[-1].worker_lag if self.samples else 0
            proc_gw, proc_ev = self.gateway.proc, self.evaluator.proc
            self.samples.append(Sample(round(time.monotonic() - start, 2), rss_mb(proc_gw.pid if proc_gw else None), rss_mb(proc_ev.pid if proc_ev else None), lag, self.frames_submitted, self.counts.frames_acked))

    async def _drive(self, vehicles: list[str], seconds: float, rate: Callable[[float], float], start: float, beside) -> dict[str, list]:
        from fleet_sim.car_client import CarLink

        async def no_commands(command):
            return True, "ignored by the drill"

        channel = self.gateway.aio_channel(client_cert=False)  # cars share connections: server TLS, a token each
        links = {v: CarLink(channel, v, issue_token(v, FLEET_SECRET), no_commands, max_pending=100_000) for v in vehicles}
        runs = [asyncio.create_task(link.run()) for link in links.values()]
        submitted: dict[str, list] = {v: [] for v in vehicles}
        alongside = asyncio.create_task(beside(start)) if beside else None
        c = self.counts
        last_acked, last_ack_at = 0, start
        batch, next_tick = 0, start
        try:
            while (now := time.monotonic()) - start < seconds:
                for v, link in links.items():
                    car_frames = frames(v, self.marker, batch * FRAMES_PER_BATCH, FRAMES_PER_BATCH)
                    link.submit(car_frames)
                    submitted[v].extend(car_frames)
                batch += 1
                self.frames_submitted += len(links) * FRAMES_PER_BATCH
                c.frames_acked = sum(link.stats.frames_acked for link in links.values())
                if c.frames_acked > last_acked:
                    last_acked, last_ack_at = c.frames_acked, now
                if now - last_ack_at > c.ack_stall_s:
                    c.ack_stall_s, c.ack_stall_at_s = round(now - last_ack_at, 2), round(last_ack_at - start, 1)
                next_tick += 1.0 / rate(now - start)
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            if alongside:
                await alongside  # a fault scheduled past the end still runs (a restart, mostly)
            drained = await asyncio.gather(*(link.drain(180) for link in links.values()))
            assert all(drained), "cars still hold unacknowledged batches after 180 s"
        finally:
            for link in links.values():
                link.stop()
            await asyncio.wait(runs, timeout=10)
            await channel.close()
        c.frames_acked = sum(link.stats.frames_acked for link in links.values())
        c.sessions = sum(link.stats.sessions for link in links.values())
        c.resent_batches = sum(link.stats.resent for link in links.values())
        for link in links.values():
            for reason, n in link.stats.errors.items():
                c.car_errors[reason] = c.car_errors.get(reason, 0) + n
        assert not any(link.stats.batches_dropped for link in links.values()), "a car dropped unacknowledged batches (max_pending)"
        return submitted
