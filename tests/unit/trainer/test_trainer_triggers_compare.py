"""Label-triggered runs and the offline comparison of two versions."""

from __future__ import annotations

import numpy as np
import torch

from longtail import tasks as tasks_mod
from longtail.labels.v1 import events_pb2 as LE
from longtail.labels.v1 import labels_pb2 as L
from longtail.model.network import MultiTaskNet
from longtail.models.v1 import trainer_pb2 as T

from trainer import compare
from trainer.triggers import LabelTrigger


class FakeTrainer:
    def __init__(self):
        self.declared = tasks_mod.load()
        self.submitted: list[tuple[T.RunSpec, str]] = []
        self.busy = False

    def busy_with(self, predicate):
        return self.busy

    def submit(self, spec, run_id="", triggered_by="api"):
        self.submitted.append((spec, triggered_by))
        return T.Run(run_id=f"r{len(self.submitted)}"), False


class FakeLabels:
    def __init__(self):
        self.created = []

    def create_dataset(self, name, tasks, description=""):
        self.created.append((name, list(tasks)))
        return L.CreateDatasetResponse(dataset=L.DatasetVersion(name=name, version=len(self.created)))


def label(i, task="stop_sign"):
    return LE.LabelCreated(label=L.Label(label_id=f"l{i}", task=task))


def test_enough_new_labels_trigger_one_run_and_duplicates_do_not_count():
    trainer, labels = FakeTrainer(), FakeLabels()
    trig = LabelTrigger(trainer, labels, "multitask", threshold=3)
    trig.on_labels([label(1), label(1), label(2), label(1, "unknown_task")])
    assert not trainer.submitted  # 2 distinct labels of a declared task
    trig.on_labels([label(3)])
    assert len(trainer.submitted) == 1
    spec, origin = trainer.submitted[0]
    assert origin == "labels:stop_sign" and list(spec.tasks) == ["stop_sign"] and spec.datasets[0].name == "auto-stop_sign"
    assert labels.created == [("auto-stop_sign", ["stop_sign"])]
    trainer.busy = True  # a triggered run is still going: no second one
    trig.on_labels([label(i) for i in range(10, 20)])
    assert len(trainer.submitted) == 1
    trainer.busy = False
    trig.on_labels([label(30)])
    assert len(trainer.submitted) == 2


def test_compare_counts_disagreements_by_kind_and_task():
    torch.manual_seed(0)
    a = MultiTaskNet(tasks_mod.DEFAULT_TASKS).eval()
    with torch.no_grad():
        a.heads["stop_sign"].out.bias[0] -= 50.0  # production sees no stop sign anywhere
    images = np.random.default_rng(0).integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    same = compare.compare_on(a, a, images, [f"s{i}" for i in range(6)])
    assert same.frames_compared == 6 and same.frames_disagreeing == 0
    b = MultiTaskNet(tasks_mod.DEFAULT_TASKS).eval()
    with torch.no_grad():
        b.load_state_dict(a.state_dict())
        b.heads["stop_sign"].out.bias[0] += 100.0  # candidate sees a stop sign everywhere
    diff = compare.compare_on(a, b, images, [f"s{i}" for i in range(6)])
    assert diff.by_task["stop_sign"] >= 1 and diff.by_kind["SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE"] >= 1
    assert diff.disagreement_rate == diff.frames_disagreeing / 6


def shadow_event(vehicle, frame, cand_version, compared, kinds=(), task="stop_sign", prod_version=1):
    from longtail.common.v1 import common_pb2 as C
    from longtail.fleet.v1 import events_pb2 as FE

    e = FE.ShadowDisagreementEvent(vehicle_id=vehicle, frame_id=frame, task=task if kinds else "", frames_compared=compared, production=C.ModelRef(name="m", version=prod_version), candidate=C.ModelRef(name="m", version=cand_version))
    for kind in kinds:
        e.differences.add(kind=kind, candidate=C.Detection(cls="stop_sign", confidence=0.9))
    return e


def test_fleet_evidence_is_aggregated_per_candidate():
    from longtail.common.v1 import common_pb2 as C
    from longtail.fleet.v1 import fleet_pb2 as F

    extra = F.SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE
    events = [
        shadow_event("a", "a:5", 2, 5, [extra]),
        shadow_event("a", "a:5", 2, 0, [F.SHADOW_DIFFERENCE_KIND_CLASS_CHANGED], task="traffic_light"),  # same frame, other task
        shadow_event("a", "", 2, 200),  # agreeing frames only
        shadow_event("b", "b:9", 2, 9, [extra]),
        shadow_event("c", "c:1", 3, 1, [extra]),  # another candidate
        shadow_event("d", "d:1", 2, 1, [extra], prod_version=7),  # beside another production
    ]
    asked = []

    def read(since, until):
        asked.append((since, until))
        return iter(events)

    req = T.CompareModelsRequest(production=C.ModelRef(name="m", version=1), candidate=C.ModelRef(name="m", version=2))
    req.time_range.since.FromMilliseconds(1000)
    r = compare.fleet_compare(req.production, req.candidate, req, read)
    assert asked == [(1000, 2**62)]
    assert (r.frames_compared, r.frames_disagreeing, r.distinct_vehicles) == (214, 2, 2)
    assert r.by_kind["SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE"] == 2 and r.by_task["traffic_light"] == 1
    assert list(r.sample_frame_ids) == ["a:5", "b:9"] and abs(r.disagreement_rate - 2 / 214) < 1e-9
    anyprod = compare.fleet_compare(C.ModelRef(name="m"), req.candidate, req, read)
    assert anyprod.distinct_vehicles == 3  # version 0: whatever production ran beside the candidate
