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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from longtail import topics

from drills.fleet import Counts, DrillLoop
from longtail_dev.infra import KAFKA_CLUSTER, Launcher


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
    counts: Counts = field(default_factory=Counts)

    def as_dict(self) -> dict:
        return asdict(self)


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
    batches of 10 frames per car per second. faults=None: an undisturbed run."""
    launcher = Launcher(say=say)
    env = launcher.up(KAFKA_CLUSTER)
    kafka_env = {k: v for k, v in env.items() if k.startswith("KAFKA_")}
    report = BrokerDrillReport(cars=cars, seconds=seconds)

    async def inject(start: float) -> None:  # beside the cars: they keep streaming while a broker restarts
        for at, action in _schedule(faults):
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            began = time.monotonic() - start  # later than `at` while the previous fault lasts
            done = await asyncio.to_thread(action, launcher, kafka_env["KAFKA_BOOTSTRAP_SERVERS"])
            report.faults.append(f"t={began:.0f}s {done}")
            say(f"drill: {report.faults[-1]}")

    with DrillLoop(kafka_env, say=say) as loop:
        report.counts = loop.run(cars, seconds, lambda t: rate, inject)
    return report


def _schedule(faults: BrokerFaults | None) -> list[tuple[float, Callable[[Launcher, str], str]]]:
    if faults is None:
        return []
    killed: list[str] = []

    def kill_leader(launcher: Launcher, bootstrap: str) -> str:
        name = f"kafka-{_leader(bootstrap, topics.TELEMETRY.name, 0)}"
        killed.append(name)
        launcher.kill(name)
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
