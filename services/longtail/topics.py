"""The one registry of Kafka topics: name, value type, key, partitions, cleanup policy.

Names follow `<domain>.<entity>[.<event>].v<N>` (dots and hyphens only: Kafka treats `.` and `_`
as colliding), where N is the proto package version of the value. Services import these
constants and never spell a topic name; `ensure_topics` creates them explicitly (auto-create
would give one partition and never apply compaction).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf.message import Message

from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.inference.v1 import events_pb2 as inference_events
from longtail.labels.v1 import events_pb2 as label_events
from longtail.mapvision.v1 import events_pb2 as map_events
from longtail.models.v1 import events_pb2 as model_events
from longtail.ops.v1 import events_pb2 as ops_events
from longtail.triggers.v1 import events_pb2 as trigger_events

NAME_RULE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)+\.v[1-9][0-9]*$")
WEEK_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    value_type: type[Message]
    key: str  # which entity id the key holds: co-partitions Faust tables with their source
    partitions: int
    compacted: bool = False
    retention_ms: int = WEEK_MS
    config: dict[str, str] = field(default_factory=dict, compare=False)  # extra topic configs

    def __post_init__(self) -> None:
        if not NAME_RULE.match(self.name):
            raise ValueError(f"topic name {self.name!r} breaks <domain>.<entity>[.<event>].v<N>")
        version = self.name.rsplit(".v", 1)[1]
        package = self.value_type.DESCRIPTOR.full_name.rsplit(".", 1)[0]
        if not package.endswith(f".v{version}"):
            raise ValueError(f"{self.name}: topic version v{version} != value package {package}")

    def kafka_config(self) -> dict[str, str]:
        conf = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if not self.compacted:
            conf["retention.ms"] = str(self.retention_ms)
        else:
            conf["min.compaction.lag.ms"] = "0"
            conf["segment.ms"] = str(3600 * 1000)
        conf.update(self.config)
        return conf


# fleet: what the cars send through the gateway, and what the gateway sends back to them
TELEMETRY = Topic("fleet.telemetry.v1", fleet_events.TelemetryBatchEvent, key="vehicle_id", partitions=6)
SNAPSHOTS = Topic("fleet.snapshots.v1", fleet_events.SnapshotUploaded, key="snapshot_id", partitions=3)
VEHICLE_COMMANDS = Topic("fleet.vehicle-commands.v1", fleet_events.VehicleCommand, key="vehicle_id", partitions=6)
SHADOW_DISAGREEMENTS = Topic("fleet.shadow-disagreements.v1", fleet_events.ShadowDisagreementEvent, key="vehicle_id", partitions=3)
# triggers: the catalog is compacted, so any replica rebuilds the current set from it
TRIGGER_CATALOG = Topic("triggers.catalog.v1", trigger_events.TriggerRecord, key="trigger_id", partitions=1, compacted=True)
TRIGGERS_FIRED = Topic("triggers.fired.v1", trigger_events.TriggerFired, key="vehicle_id", partitions=6)
# Fires before budget, rate limit and fleet-wide dedup: repartitioned by trigger so one worker decides.
FIRE_CANDIDATES = Topic("triggers.fire-candidates.v1", trigger_events.TriggerFired, key="trigger_id", partitions=3)
# map-vision
MAP_FEATURES = Topic("mapvision.features.v1", map_events.MapFeatureUpdated, key="feature_id", partitions=1, compacted=True)
MAP_DISAGREEMENTS = Topic("mapvision.disagreements.v1", map_events.Disagreement, key="vehicle_id", partitions=6)
# inference, labels, models
INFERENCE_RESULTS = Topic("inference.results.v1", inference_events.InferenceResult, key="snapshot_id", partitions=3)
SAMPLES_REGISTERED = Topic("labels.samples.v1", label_events.SampleRegistered, key="sample_id", partitions=3)
LABELS_CREATED = Topic("labels.labels.v1", label_events.LabelCreated, key="sample_id", partitions=3)
DATASETS_PUBLISHED = Topic("labels.datasets.v1", label_events.DatasetPublished, key="dataset", partitions=1)
SUITES_EVALUATED = Topic("labels.suite-results.v1", label_events.SuiteEvaluated, key="model", partitions=1)
MODELS_PUBLISHED = Topic("models.published.v1", model_events.ModelPublished, key="model", partitions=1)
MODELS_REFUSED = Topic("models.refused.v1", model_events.ModelRefused, key="model", partitions=1)
# operations
DEAD_LETTERS = Topic("ops.dead-letters.v1", ops_events.DeadLetter, key="source_topic/partition/offset", partitions=1, retention_ms=4 * WEEK_MS)

ALL: tuple[Topic, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Topic))
_BY_NAME = {t.name: t for t in ALL}
assert len(_BY_NAME) == len(ALL), "duplicate topic name"


def by_name(name: str) -> Topic:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def min_insync(replication_factor: int, configured: int | None = None) -> int:
    """min.insync.replicas of a topic: as configured, else 2 from a replication factor of 3 up (an
    acks=all write then survives one broker down and is on two brokers), else 1."""
    return configured if configured is not None else (2 if replication_factor >= 3 else 1)


def ensure_topics(bootstrap_servers: str, topics: Iterable[Topic] = ALL, replication_factor: int = 1, min_insync_replicas: int | None = None, timeout: float = 30.0) -> list[str]:
    """Create missing topics with their partitions and config (replication factor and
    min.insync.replicas from the arguments); grow partition counts that are short.

    Returns the names it created. Safe to call from every service at start-up (idempotent).
    """
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    existing = admin.list_topics(timeout=timeout).topics
    wanted = list(topics)
    isr = {"min.insync.replicas": str(min_insync(replication_factor, min_insync_replicas))}
    new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=replication_factor, config={**t.kafka_config(), **isr}) for t in wanted if t.name not in existing]
    created = []
    if new:
        for name, fut in admin.create_topics(new, request_timeout=timeout).items():
            try:
                fut.result()
                created.append(name)
            except Exception as exc:  # a concurrent creator won the race: fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    grow = [NewPartitions(t.name, t.partitions) for t in wanted if t.name in existing and len(existing[t.name].partitions) < t.partitions]
    if grow:
        for fut in admin.create_partitions(grow, request_timeout=timeout).values():
            fut.result()
    if created:
        wait_until_listed(admin, created, timeout)
    return created


def wait_until_listed(admin, names: Iterable[str], timeout: float = 30.0) -> None:
    """Return once the cluster's metadata lists each topic with a leader for every partition: a
    topic just created reaches the brokers' metadata a moment later (on a 3-node cluster, a client
    asking then was told the topic does not exist)."""
    names = list(names)
    deadline = time.monotonic() + timeout
    while True:
        listed = admin.list_topics(timeout=timeout).topics
        missing = [n for n in names if n not in listed or listed[n].error is not None or any(p.leader < 0 for p in listed[n].partitions.values())]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"created but still not listed with leaders after {timeout:.0f}s: {', '.join(missing)}")
        time.sleep(0.2)
