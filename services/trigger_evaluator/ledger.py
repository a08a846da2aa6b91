"""Yield accounting per trigger version: fired -> uploaded -> labelled -> true positive.

Counts are distinct fire_ids, so at-least-once delivery upstream never inflates them. The ledger
is rebuilt from the topics on start (triggers.fired.v1, fleet.snapshots.v1, labels.labels.v1).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import Counter, Gauge

from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.labels.v1 import events_pb2 as label_events
from longtail.registry import TRIGGER_EVALUATOR
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2

SERVICE = TRIGGER_EVALUATOR.name
STAGE = Counter("longtail_trigger_yield_events_total", "Distinct fires reaching each stage", ["service", "trigger", "version", "stage"])
YIELD = Gauge("longtail_trigger_yield_ratio", "True positives / labelled, per trigger version", ["service", "trigger", "version"])
STAGES = ("fired", "upload_requested", "uploaded", "labelled", "true_positive")


@dataclass
class Counts:
    sets: dict[str, set[str]] = field(default_factory=lambda: {stage: set() for stage in STAGES})

    def add(self, stage: str, fire_id: str) -> bool:
        bucket = self.sets[stage]
        if fire_id in bucket:
            return False
        bucket.add(fire_id)
        return True

    def n(self, stage: str) -> int:
        return len(self.sets[stage])

    @property
    def ratio(self) -> float:
        labelled = self.n("labelled")
        return self.n("true_positive") / labelled if labelled else 0.0


class YieldLedger:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, int], Counts] = defaultdict(Counts)

    def _add(self, trigger_id: str, version: int, stage: str, fire_id: str) -> tuple[str, int] | None:
        if not trigger_id or not fire_id:
            return None
        key = (trigger_id, version)
        if key not in self.counts:  # every stage of a new trigger version at 0: "nothing labelled yet" is data too
            for each in STAGES:
                STAGE.labels(SERVICE, trigger_id, str(version), each)
        counts = self.counts[key]
        if counts.add(stage, fire_id):
            STAGE.labels(SERVICE, trigger_id, str(version), stage).inc()
            YIELD.labels(SERVICE, trigger_id, str(version)).set(counts.ratio)
            return key
        return None

    def on_fired(self, _key, event: trigger_events.TriggerFired | None):
        if event is None:
            return None
        changed = self._add(event.trigger_id, event.trigger_version, "fired", event.fire_id)
        if event.upload_requested:
            changed = self._add(event.trigger_id, event.trigger_version, "upload_requested", event.fire_id) or changed
        return changed

    def on_snapshot(self, _key, event: fleet_events.SnapshotUploaded | None):
        if event is None or not event.trigger_id:
            return None
        return self._add(event.trigger_id, event.trigger_version, "uploaded", event.fire_id)

    def on_label(self, _key, event: label_events.LabelCreated | None):
        if event is None:
            return None
        prov = event.provenance
        changed = self._add(prov.trigger_id, prov.trigger_version, "labelled", prov.fire_id)
        if event.label.HasField("trigger_true_positive") and event.label.trigger_true_positive:
            changed = self._add(prov.trigger_id, prov.trigger_version, "true_positive", prov.fire_id) or changed
        return changed

    def uploads_spent(self, trigger_id: str, version: int) -> int:
        counts = self.counts.get((trigger_id, version))
        if counts is None:
            return 0
        return len(counts.sets["upload_requested"] | counts.sets["uploaded"])

    def report(self, trigger_id: str, version: int, budget: int) -> triggers_pb2.TriggerYield:
        counts = self.counts.get((trigger_id, version), Counts())
        spent = self.uploads_spent(trigger_id, version)
        now = Timestamp()
        now.GetCurrentTime()
        return triggers_pb2.TriggerYield(
            trigger_id=trigger_id,
            trigger_version=version,
            fired=counts.n("fired"),
            uploaded=counts.n("uploaded"),
            labelled=counts.n("labelled"),
            true_positive=counts.n("true_positive"),
            yield_ratio=counts.ratio,
            upload_budget=budget,
            budget_remaining=max(0, budget - spent),
            updated_at=now,
        )

    def rule_breach(self, trigger: triggers_pb2.Trigger) -> tuple[triggers_pb2.TriggerState, str] | None:
        """The state an ACTIVE trigger must move to (budget used up, yield below its floor), and why."""
        if trigger.state != triggers_pb2.TRIGGER_STATE_ACTIVE:
            return None
        spec = trigger.spec
        counts = self.counts.get((trigger.trigger_id, trigger.version))
        if counts is None:
            return None
        if spec.upload_budget and self.uploads_spent(trigger.trigger_id, trigger.version) >= spec.upload_budget:
            return triggers_pb2.TRIGGER_STATE_EXHAUSTED, f"upload budget of {spec.upload_budget} used up"
        if spec.yield_floor > 0 and counts.n("labelled") >= max(1, spec.yield_min_labelled) and counts.ratio < spec.yield_floor:
            return triggers_pb2.TRIGGER_STATE_PAUSED, f"yield {counts.ratio:.2f} below the floor {spec.yield_floor:.2f} after {counts.n('labelled')} labels"
        return None
