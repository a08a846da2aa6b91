"""Broker faults: `broker_faults` runs a fleet of simulated cars (`fleet_sim.car_client.CarLink`,
the simulator's own session client: it resends what was not acked) through a real gateway into the
three-node Kafka cluster (`longtail infra up --kafka-brokers 3`: replication factor 3,
min.insync.replicas 2), with the trigger-evaluator's fleet-side worker deciding a fleet trigger on
the same telemetry. While the cars stream, it `kill -9`s the broker leading partition 0 of
fleet.telemetry.v1 (brought back a few seconds later) and then stops another broker for a while.
At the end it counts, from the topics themselves: acknowledged frames missing (must be 0), frames
stored twice, fires missing against the trigger evaluated offline on the acknowledged frames (0),
fires decided twice differently (0), and how long acknowledgements and the telemetry stream stalled.

The integration test runs it small (tests/integration/test_kafka_cluster.py); `python -m bench
brokers` runs it larger, next to an undisturbed run of the same size.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import grpc

from longtail import topics
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.kafka import BatchConsumer, Producer
from longtail.registry import GATEWAY, TRIGGER_EVALUATOR
from longtail.triggerlang import FiringOptions, compile_trigger
from longtail.triggers.v1 import triggers_pb2 as T
from longtail.triggers.v1 import triggers_pb2_grpc

from longtail_dev.infra import KAFKA_CLUSTER, Launcher
from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess

FLEET_SECRET = "drill-fleet-secret-0123456789abcdefghij"
OPERATOR_SECRET = "drill-operator-secret-0123456789abcdefg"
FRAMES_PER_BATCH = 10


@dataclass
class BrokerFaults:
    """When, counted from the first frame, and for how long."""

    kill_leader_at: float = 8.0  # kill -9 the leader of fleet.telemetry.v1 partition 0 ...
    restart_after: float = 5.0  # ... and start it again this much later
    stop_broker_at: float = 30.0  # stop (SIGTERM) another broker (not before the first is back in sync) ...
    stop_for: float = 30.0  # ... for this long once it has shut down, then start it again


@dataclass
class BrokerDrillReport:
    cars: int
    seconds: float
    faults: list[str] = field(default_factory=list)  # "t=8s kill -9 kafka-2 (leader of fleet.telemetry.v1/0), ...", ...
    frames_submitted: int = 0
    frames_acked: int = 0
    acked_frames_lost: int = 0  # acknowledged to a car, not in fleet.telemetry.v1
    frames_stored_twice: int = 0  # a batch resent after a lost ack: at-least-once, harmless downstream
    fires_expected: int = 0  # the trigger evaluated offline over the acknowledged frames
    fires_found: int = 0
    fires_lost: int = 0
    fires_conflicting: int = 0  # one fire id decided two ways (must be 0)
    fire_records_repeated: int = 0  # the same decision published again after a redelivery
    ack_stall_s: float = 0.0  # longest time no car got an ack, while cars were sending ...
    ack_stall_at_s: float = 0.0  # ... and when it began (seconds from the first frame)
    telemetry_stall_s: float = 0.0  # longest gap between records arriving on fleet.telemetry.v1
    sessions: int = 0
    resent_batches: int = 0
    car_errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _frames(vehicle: str, marker: float, first: int, count: int):
    """A stop sign on even frames only (a rising edge every other frame); ego.y = marker, so the
    drill's trigger ignores every other telemetry on the topic."""
    batch = telemetry_batch(vehicle, first, count, detections=1)
    for frame in batch.frames:
        frame.ego.y = marker
        if frame.sequence % 2:
            del frame.detections[:]
    return list(batch.frames)


def _expected_fires(trigger_id: str, expression: str, frames_by_car: dict[str, list]) -> set[str]:
    program = compile_trigger(expression, FiringOptions(), trigger_id, 1)
    fires = set()
    for frames in frames_by_car.values():
        state = program.new_state()
        for frame in sorted(frames, key=lambda f: f.sequence):
            fire = program.evaluate(state, frame)
            if fire is not None:
                fires.add(fire.fire_id)
    return fires


class _TopicWatch:
    """Reads a topic in a thread from now on, keeping the records `keep` selects and their arrival times."""

    def __init__(self, bootstrap: str, topic, keep: Callable) -> None:
        self._keep = keep
        self.records: list = []
        self.arrivals: list[float] = []
        self._stop = threading.Event()
        quiet = {"log_level": 2}  # brokers going away is the point: librdkafka's connection errors are expected
        self._producer = Producer(bootstrap, "drill-reader", **quiet)
        self._consumer = BatchConsumer(bootstrap, f"drill-{uuid.uuid4().hex[:8]}", [topic], self._take, self._producer, **quiet)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _take(self, records) -> None:
        now = time.monotonic()
        for r in records:
            if self._keep(r.value):
                self.records.append(r.value)
                self.arrivals.append(now)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._consumer.poll_once()

    def stop(self) -> list:
        self._stop.set()
        self._thread.join(30)
        self._consumer.close()
        self._producer.close()
        return self.records


def _kill(launcher: Launcher, name: str) -> None:
    entry = launcher._load()[name]  # noqa: SLF001 (the drill kills exactly what the launcher started)
    os.killpg(entry["pid"], signal.SIGKILL)


def _in_sync_after(bootstrap: str, began: float, timeout: float = 120.0) -> float:
    """Waits until no partition is under-replicated (every replica back in its ISR); the seconds
    since `began`. Operators stop the next broker only then, and so does the drill."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 2})
    deadline = time.monotonic() + timeout
    while True:
        partitions = [p for t in admin.list_topics(timeout=10).topics.values() for p in t.partitions.values()]
        if all(set(p.isrs) == set(p.replicas) for p in partitions):
            return time.monotonic() - began
        if time.monotonic() > deadline:
            raise TimeoutError(f"partitions still under-replicated {timeout:.0f} s after the broker came back")
        time.sleep(0.5)


def _leader(bootstrap: str, topic: str, partition: int) -> int:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10).topics[topic].partitions[partition].leader


def broker_faults(cars: int = 6, seconds: float = 40.0, rate: float = 4.0, faults: BrokerFaults | None = None, say: Callable[[str], None] = print) -> BrokerDrillReport:
    """Runs the drill against the cluster (started here if not running; left running). `rate`:
    batches of FRAMES_PER_BATCH frames per car per second. faults=None: an undisturbed run."""
    launcher = Launcher(say=say)
    env = launcher.up(KAFKA_CLUSTER)
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    kafka_env = {k: v for k, v in env.items() if k.startswith("KAFKA_")}
    report = BrokerDrillReport(cars=cars, seconds=seconds)
    marker = float(uuid.uuid4().int % 100_000) + 0.5
    evaluator = ServiceProcess(TRIGGER_EVALUATOR.package, TRIGGER_EVALUATOR.grpc, {**kafka_env, "OPERATOR_TOKEN_SECRET": OPERATOR_SECRET})
    gateway = ServiceProcess(GATEWAY.package, GATEWAY.grpc, {**kafka_env, "FLEET_TOKEN_SECRET": FLEET_SECRET})
    try:
        evaluator.start(timeout=120)
        gateway.start(timeout=120)
        trigger_id = f"drill-{uuid.uuid4().hex[:8]}"
        expression = f"count(stop_sign) >= 1 and ego.y == {marker}"
        _activate(evaluator.address, trigger_id, expression)
        time.sleep(1.0)  # the worker's catalog view follows the catalog topic
        vehicles = [f"drill-{i}-{uuid.uuid4().hex[:6]}" for i in range(cars)]
        drill_cars = set(vehicles)
        telemetry = _TopicWatch(bootstrap, topics.TELEMETRY, lambda v: v.vehicle_id in drill_cars)
        fired = _TopicWatch(bootstrap, topics.TRIGGERS_FIRED, lambda v: v.trigger_id == trigger_id)
        submitted = asyncio.run(_drive(gateway.address, vehicles, marker, seconds, rate, faults, launcher, bootstrap, report, say))
        expected = _expected_fires(trigger_id, expression, submitted)
        deadline = time.monotonic() + 120
        want_frames = {f.frame_id for frames in submitted.values() for f in frames}
        while time.monotonic() < deadline:
            have_frames = {f.frame_id for e in list(telemetry.records) for f in e.frames}
            if want_frames <= have_frames and expected <= {f.fire_id for f in list(fired.records)}:
                break
            time.sleep(0.5)
        time.sleep(2.0)  # a little longer: would reveal extra records
        stored = [f.frame_id for e in telemetry.stop() for f in e.frames]
        fires = fired.stop()
    finally:
        gateway.stop()
        evaluator.stop()
    report.frames_submitted = sum(len(f) for f in submitted.values())
    report.acked_frames_lost = len(want_frames - set(stored))
    report.frames_stored_twice = len(stored) - len(set(stored))
    decisions = defaultdict(set)
    for f in fires:
        decisions[f.fire_id].add((f.upload_requested, f.suppressed_reason))
    report.fires_expected, report.fires_found = len(expected), len(decisions)
    report.fires_lost = len(expected - set(decisions))
    report.fires_conflicting = sum(len(d) > 1 for d in decisions.values())
    report.fire_records_repeated = len(fires) - len(decisions)
    report.telemetry_stall_s = round(max((b - a for a, b in zip(telemetry.arrivals, telemetry.arrivals[1:], strict=False)), default=0.0), 2)
    return report


def _activate(address: str, trigger_id: str, expression: str) -> None:
    auth = [("authorization", f"Bearer {issue_token('drill', OPERATOR_SECRET, audience=OPERATOR_AUDIENCE)}")]
    with grpc.insecure_channel(address) as channel:
        api = triggers_pb2_grpc.TriggerCatalogServiceStub(channel)
        spec = T.TriggerSpec(name=trigger_id, expression=expression, site=T.TRIGGER_SITE_FLEET, task="stop_sign", upload_budget=1_000_000, max_uploads_per_car_hour=1_000_000)
        api.CreateTrigger(T.CreateTriggerRequest(trigger_id=trigger_id, spec=spec), metadata=auth, timeout=10)
        api.ActivateTrigger(T.ActivateTriggerRequest(trigger_id=trigger_id), metadata=auth, timeout=10)


async def _drive(address: str, vehicles: list[str], marker: float, seconds: float, rate: float, faults: BrokerFaults | None, launcher: Launcher, bootstrap: str, report: BrokerDrillReport, say) -> dict[str, list]:
    """Streams every car's batches for `seconds`, injects the faults on schedule, drains, and
    returns the frames each car got acknowledged (all it submitted, once drained)."""
    from fleet_sim.car_client import CarLink

    async def no_commands(command):
        return True, "ignored by the drill"

    channel = grpc.aio.insecure_channel(address)
    links = {v: CarLink(channel, v, issue_token(v, FLEET_SECRET), no_commands) for v in vehicles}
    runs = [asyncio.create_task(link.run()) for link in links.values()]
    submitted: dict[str, list] = {v: [] for v in vehicles}
    start = time.monotonic()

    async def inject() -> None:  # beside the cars: they keep streaming while a broker restarts
        for at, action in _schedule(faults):
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            began = time.monotonic() - start  # later than `at` while the previous fault lasts
            done = await asyncio.to_thread(action, launcher, bootstrap)
            report.faults.append(f"t={began:.0f}s {done}")
            say(f"drill: {report.faults[-1]}")

    injecting = asyncio.create_task(inject())
    last_acked, last_ack_at, ack_stall, stall_began = 0, start, 0.0, 0.0
    batch = 0
    try:
        while time.monotonic() - start < seconds:
            for v, link in links.items():
                frames = _frames(v, marker, batch * FRAMES_PER_BATCH, FRAMES_PER_BATCH)
                link.submit(frames)
                submitted[v].extend(frames)
            batch += 1
            acked = sum(link.stats.frames_acked for link in links.values())
            if acked > last_acked:
                last_acked, last_ack_at = acked, time.monotonic()
            if time.monotonic() - last_ack_at > ack_stall:
                ack_stall, stall_began = time.monotonic() - last_ack_at, last_ack_at - start
            await asyncio.sleep(max(0.0, start + batch / rate - time.monotonic()))
        await injecting  # a fault scheduled past the end still runs (a restart, mostly)
        drained = await asyncio.gather(*(link.drain(120) for link in links.values()))
        assert all(drained), "cars still hold unacknowledged batches after 120 s"
    finally:
        for link in links.values():
            link.stop()
        await asyncio.wait(runs, timeout=10)
        await channel.close()
    report.ack_stall_s, report.ack_stall_at_s = round(ack_stall, 2), round(stall_began, 1)
    report.frames_acked = sum(link.stats.frames_acked for link in links.values())
    report.sessions = sum(link.stats.sessions for link in links.values())
    report.resent_batches = sum(link.stats.resent for link in links.values())
    for link in links.values():
        for reason, n in link.stats.errors.items():
            report.car_errors[reason] = report.car_errors.get(reason, 0) + n
    # batches dropped by a car (past max_pending) were never acknowledged: not counted as submitted
    assert not any(link.stats.batches_dropped for link in links.values()), "a car dropped unacknowledged batches (max_pending)"
    return submitted


def _schedule(faults: BrokerFaults | None) -> list[tuple[float, Callable[[Launcher, str], str]]]:
    if faults is None:
        return []
    killed: list[str] = []

    def kill_leader(launcher: Launcher, bootstrap: str) -> str:
        name = f"kafka-{_leader(bootstrap, topics.TELEMETRY.name, 0)}"
        killed.append(name)
        _kill(launcher, name)
        time.sleep(faults.restart_after)
        began = time.monotonic()
        launcher.up([name])
        return f"kill -9 {name} (leader of {topics.TELEMETRY.name}/0), started again {faults.restart_after:.0f} s later, in sync {_in_sync_after(bootstrap, began):.1f} s after its start"

    def stop_another(launcher: Launcher, bootstrap: str) -> str:
        name = next(n for n in KAFKA_CLUSTER if n not in killed)
        began = time.monotonic()
        launcher.down([name])  # SIGTERM: a controlled shutdown, leadership handed over first
        stopping = time.monotonic() - began
        time.sleep(faults.stop_for)
        began = time.monotonic()
        launcher.up([name])
        return f"{name} stopped (SIGTERM, {stopping:.1f} s to shut down) for {faults.stop_for:.0f} s, started again, in sync {_in_sync_after(bootstrap, began):.1f} s later"

    return [(faults.kill_leader_at, kill_leader), (faults.stop_broker_at, stop_another)]
