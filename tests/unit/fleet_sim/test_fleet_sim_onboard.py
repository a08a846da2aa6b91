"""What a simulated car does with beamed-down models: verify and install them, run production, a
shadow-mode candidate and trigger detectors on every frame, and report disagreements."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import torch

from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2 as C
from longtail.fleet.v1 import fleet_pb2 as F
from longtail.model import torchscript
from longtail.model.network import MultiTaskNet
from longtail.synthetic.world import World, WorldConfig
from longtail.tasks import DEFAULT_TASKS

from fleet_sim.fleet import SimConfig, SimulatedFleet
from fleet_sim.onboard import FLUSH_EVERY, CarModels, Installed, run_grouped

TINY = (4, 8, 8, 8)


def net(seed, stop_bias=0.0):
    torch.manual_seed(seed)
    model = MultiTaskNet(DEFAULT_TASKS, channels=TINY).eval()
    with torch.no_grad():
        model.heads["stop_sign"].out.bias[0] += stop_bias
    return model


def shadow_command(model, name, version, role):
    data = torchscript.to_bytes(model)
    cmd = F.Command(command_id=f"model/{role}/{name}/{version}")
    cmd.update_shadow_model.CopyFrom(F.UpdateShadowModel(model=C.ModelRef(name=name, version=version), role=role, weights=data, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)))
    return cmd


def detector_command(name, version):
    torch.manual_seed(version)
    det = MultiTaskNet([tasks_mod.TaskSpec(name, "classification", ("absent", "present"), hidden=8)], TINY).eval()
    data = torchscript.to_bytes(det)
    cmd = F.Command(command_id=f"det/{name}/{version}")
    cmd.update_trigger_model.CopyFrom(F.UpdateTriggerModel(detector_name=name, model=C.ModelRef(name=name, version=version), weights=data, sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data)))
    return cmd


def offline_fleet(cars=3):
    return SimulatedFleet(SimConfig(cars=cars, duration_s=1.0, batch_frames=1000), World(WorldConfig(), seed=0), net(0))


def test_cars_install_production_candidate_and_detectors_and_use_them_on_every_frame():
    fleet = offline_fleet()
    car, other = fleet.cars[0], fleet.cars[1]

    async def install():
        results = [
            await fleet._on_command(car, shadow_command(net(1, stop_bias=-100.0), "perception", 4, C.MODEL_ROLE_PRODUCTION)),
            await fleet._on_command(car, shadow_command(net(1, stop_bias=100.0), "perception", 5, C.MODEL_ROLE_CANDIDATE)),
            await fleet._on_command(car, detector_command("occluded", 2)),
        ]
        return results

    results = asyncio.run(install())
    assert all(ok for ok, _ in results), results
    fleet._tick(1_700_000_000.0)
    frame = car.outgoing[-1]
    assert (frame.model.name, frame.model.version) == ("perception", 4)
    assert (frame.shadow_model.name, frame.shadow_model.version) == ("perception", 5)
    assert set(frame.trigger_scores) == {"occluded@2", "occluded"} and 0.0 <= frame.trigger_scores["occluded"] <= 1.0
    assert any(d.cls == "stop_sign" for d in frame.shadow_detections)  # the candidate sees stop signs everywhere
    assert not any(d.cls == "stop_sign" for d in frame.detections)  # production sees none: one difference, stop_sign only
    assert fleet.report.shadow_frames == 1 and fleet.report.shadow_disagreements == 1
    plain = other.outgoing[-1]  # a car that got nothing keeps the model it started with
    assert plain.model.name == "bootstrap" and not plain.HasField("shadow_model") and not plain.trigger_scores
    assert {k[:2] for k in fleet.shelf.models} == {("perception", 4), ("perception", 5), ("occluded", 2)}


def test_a_model_that_does_not_match_its_announced_hash_is_refused_and_the_old_one_kept():
    fleet = offline_fleet(1)
    car = fleet.cars[0]
    cmd = shadow_command(net(1), "perception", 9, C.MODEL_ROLE_PRODUCTION)
    cmd.update_shadow_model.sha256 = "0" * 64
    ok, message = asyncio.run(fleet._on_command(car, cmd))
    assert not ok and "sha256" in message
    broken = shadow_command(net(1), "perception", 10, C.MODEL_ROLE_PRODUCTION)
    broken.update_shadow_model.weights = b"not a model"
    broken.update_shadow_model.sha256 = hashlib.sha256(b"not a model").hexdigest()
    broken.update_shadow_model.size_bytes = len(b"not a model")
    ok, message = asyncio.run(fleet._on_command(car, broken))
    assert not ok and "TorchScript" in message
    assert car.models.production.ref.name == "bootstrap"


def test_promoting_the_candidate_ends_shadow_mode_and_reports_the_frames_compared():
    fleet = offline_fleet(1)
    car = fleet.cars[0]
    sent = []
    car.link = type("Link", (), {"report_shadow": lambda self, r: sent.append(r), "submit": lambda self, frames: None})()
    asyncio.run(fleet._on_command(car, shadow_command(net(0), "perception", 5, C.MODEL_ROLE_CANDIDATE)))  # agrees with production
    for i in range(3):
        fleet._tick(1_700_000_000.0 + i)
    assert sent == []  # agreeing frames are reported in bulk, not one by one
    ok, _ = asyncio.run(fleet._on_command(car, shadow_command(net(0), "perception", 5, C.MODEL_ROLE_PRODUCTION)))
    assert ok and car.models.candidate is None and car.models.production.ref.version == 5
    assert [(r.frames_compared, len(r.differences)) for r in sent] == [(3, 0)]
    assert (sent[0].candidate.name, sent[0].candidate.version, sent[0].production.name) == ("perception", 5, "bootstrap")


def test_shadow_reports_count_every_compared_frame_once():
    prod, cand = Installed(C.ModelRef(name="m", version=1), net(0)), Installed(C.ModelRef(name="m", version=2), net(0, stop_bias=100.0))
    models = CarModels(prod, cand)
    images = np.random.default_rng(0).integers(0, 255, (FLUSH_EVERY + 5, 64, 64, 3), dtype=np.uint8)
    pp, cp = run_grouped(images, [prod] * len(images)), run_grouped(images, [cand] * len(images))
    reports = []
    for i in range(len(images)):
        frame = F.Frame(frame_id=f"v:{i}", vehicle_id="v", sequence=i)
        reports += models.compare(frame, pp[i], cp[i])
    reports.append(models.flush())
    assert sum(r.frames_compared for r in reports if r is not None) == len(images)
    assert any(r.differences for r in reports if r is not None)


def test_run_grouped_runs_each_model_version_once_on_its_cars():
    calls = []

    class Counting:
        tasks = ()

        def __init__(self, tag):
            self.tag = tag

        def predict(self, images):
            calls.append((self.tag, len(images)))
            return [{"tag": self.tag} for _ in images]

    a, b = Installed(C.ModelRef(name="m", version=1), Counting("a")), Installed(C.ModelRef(name="m", version=2), Counting("b"))
    out = run_grouped(np.zeros((4, 2, 2, 3), np.uint8), [a, b, None, a])
    assert sorted(calls) == [("a", 2), ("b", 1)]
    assert [o and o["tag"] for o in out] == ["a", "b", None, "a"]
