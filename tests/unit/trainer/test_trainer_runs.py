"""The Trainer end to end in-process (in-memory object store, fake label store running the real
predicate module): first version, a deliberately regressed candidate refused by the gate, the same
candidate accepted with a recorded waiver, an improved candidate published."""

from __future__ import annotations

import grpc
import pytest

from longtail import model_repo, topics
from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.models.v1 import trainer_pb2 as T
from longtail.synthetic.frames import occluded_only, sample_frames
from longtail.synthetic.world import STOP_SIGN, World, WorldConfig

from trainer.registry import Registry
from trainer.runner import Settings, Trainer

PLAIN = "any(d.cls == stop_sign and d.conf >= 0.5)"
NOTHING = "not any(stop_sign, min_conf=0.5)"


def big_stop(target, gt):
    return any(o.cls == "stop_sign" and o.box_px >= 12 and not o.truncated for o in gt)


def suite_frames():
    plain = sample_frames(World(WorldConfig().common_only(), seed=424), 10, seed=1, mix={STOP_SIGN: 1.0}, distance=(4.0, 12.0), accept=big_stop, max_tries=50)
    empty = sample_frames(World(WorldConfig().common_only(), seed=425), 10, seed=2, mix={"road": 1.0}, accept=lambda t, gt: not any(o.cls == "stop_sign" for o in gt), max_tries=50)
    occluded = sample_frames(World(occluded_only(), seed=426), 10, seed=3, mix={STOP_SIGN: 1.0}, distance=(4.0, 12.0), accept=big_stop, max_tries=50)
    return plain.images, empty.images, occluded.images


@pytest.fixture
def trainer(store, labels):
    events = []
    t = Trainer(store, Registry(store), tasks_mod.load(), labels, lambda topic, key, value: events.append((topic, key, value)), Settings(threads=2, default_epochs=3, fallback_samples=400))
    t.events = events
    t.start(recover=False)
    yield t
    t.stop()


def run(trainer, **kw):
    spec = T.RunSpec(model_name="unit", **kw)
    r, _ = trainer.submit(spec)
    return trainer.wait(r.run_id, 300)


def test_gate_refuses_a_regressed_model_accepts_it_with_a_waiver_and_publishes_an_improved_one(trainer, labels, store):
    plain, empty, occluded = suite_frames()
    labels.add_suite("stop_sign.plain", "stop_sign", PLAIN, plain)
    labels.add_suite("stop_sign.no-false-alarms", "stop_sign", NOTHING, empty)
    labels.add_suite("stop_sign.occluded", "stop_sign", PLAIN, occluded)

    # trained long enough that no case sits near the 0.5 threshold (at 6 epochs an empty road with a
    # tree scored 0.42, and any fine-tuning flipped it: the gate then rightly refused "improved")
    first = run(trainer, promote=True, seed=1, epochs=12, hyperparameters=_hp(fallback_world="common", fallback_samples=900))
    assert first.status == T.RUN_STATUS_SUCCEEDED, first.error
    assert first.gate_report.accepted and "no baseline" in first.gate_report.reasons[-1]
    v1 = first.model.version
    assert trainer.registry.production("unit") == v1
    published = [e for topic, _, e in trainer.events if topic is topics.MODELS_PUBLISHED]
    assert published[-1].model.version == v1 and published[-1].role == C.MODEL_ROLE_PRODUCTION
    model_repo.load_version(store, "unit", v1)  # what inference will validate
    base_rates = {s.suite: s.after_pass_rate for s in first.gate_report.suites}
    assert base_rates["stop_sign.plain"] >= 0.7, base_rates

    # deliberately regressed: fresh weights, one short epoch
    bad = run(trainer, from_scratch=True, epochs=1, seed=2, hyperparameters=_hp(fallback_samples=64))
    assert bad.status == T.RUN_STATUS_REFUSED, bad.error
    report = bad.gate_report
    assert not report.accepted and report.baseline.version == v1
    regressed = {s.suite: list(s.regressed_case_ids) for s in report.suites}
    assert regressed["stop_sign.plain"], regressed
    assert any("regressed" in r for r in report.reasons)
    refused = [e for topic, _, e in trainer.events if topic is topics.MODELS_REFUSED]
    assert refused and refused[-1].model.version == bad.model.version and refused[-1].refused_by == "trainer"
    mv = trainer.registry.get("unit", bad.model.version)
    assert mv.state == T.MODEL_STATE_REFUSED and not mv.gate_report.accepted  # kept with its report
    assert bad.model.version not in model_repo.list_versions(store, "unit")  # never in the Triton repository
    assert trainer.registry.production("unit") == v1

    # the same regression, waived with a reason: accepted, waiver recorded
    waivers = [T.Waiver(suite=s.suite, reason="accepted for the test", approved_by="alice") for s in report.suites if s.regressed_case_ids]
    waived = run(trainer, from_scratch=True, epochs=1, seed=2, waivers=waivers, hyperparameters=_hp(fallback_samples=64))
    assert waived.status == T.RUN_STATUS_SUCCEEDED, waived.error
    assert waived.gate_report.accepted and {w.suite for w in waived.gate_report.waivers_applied} == {w.suite for w in waivers}
    assert all(s.waived_case_ids == s.regressed_case_ids for s in waived.gate_report.suites)
    assert waived.model.version > bad.model.version  # the refused version keeps its number
    stored = trainer.registry.get("unit", waived.model.version)
    assert stored.state == T.MODEL_STATE_CANDIDATE and stored.gate_report.waivers_applied[0].reason == "accepted for the test"
    assert trainer.registry.production("unit") == v1  # candidate, not promoted

    # improved: from production, on data with the long tail (occluded stop signs)
    good = run(trainer, promote=True, seed=3, epochs=8, hyperparameters=_hp(fallback_world="mixed", fallback_samples=800))
    assert good.status == T.RUN_STATUS_SUCCEEDED, (good.error, list(good.gate_report.reasons))
    assert good.gate_report.accepted and good.gate_report.baseline.version == v1
    rates = {s.suite: (s.before_pass_rate, s.after_pass_rate) for s in good.gate_report.suites}
    assert rates["stop_sign.occluded"][1] > rates["stop_sign.occluded"][0], rates
    assert trainer.registry.production("unit") == good.model.version
    assert good.fresh_heads == []  # every head came from production
    assert {r.model.version for r in labels.recorded} >= {v1, good.model.version}


def _hp(**kw):
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update(kw)
    return s


def test_invalid_waiver_is_rejected(trainer):
    from trainer.gate import InvalidWaiver

    with pytest.raises(InvalidWaiver):
        trainer.submit(T.RunSpec(model_name="unit", waivers=[T.Waiver(suite="x", reason=" ")]))
    with pytest.raises(ValueError, match="not declared"):
        trainer.submit(T.RunSpec(model_name="unit", tasks=["nope"]))


def test_a_task_declared_in_the_label_store_while_the_trainer_runs_gets_its_head_and_is_remembered(trainer, labels, store):
    with pytest.raises(ValueError, match="nor in the label store: caution_lights"):
        trainer.submit(T.RunSpec(model_name="unit", tasks=["caution_lights"]))
    labels.tasks["caution_lights"] = L.Task(name="caution_lights", prototype=C.TASK_PROTOTYPE_DETECTION, classes=["vehicle"], attributes=[L.AttributeSpec(name="lights", values=["off", "hazard", "police"])], object_size_m=1.6)
    done = run(trainer, tasks=["stop_sign", "caution_lights"], promote=True, seed=1, epochs=1, hyperparameters=_hp(fallback_samples=64))
    assert done.status == T.RUN_STATUS_SUCCEEDED, done.error
    heads = {t.name: t for t in model_repo.load_version(store, "unit", done.model.version).tasks}
    assert "caution_lights" in heads and heads["caution_lights"].object_size_m == pytest.approx(1.6)
    assert [d.name for d in trainer.declared][-1] == "caution_lights"  # after tasks.yaml's: no head moved

    again = Trainer(store, Registry(store), tasks_mod.load(), labels, lambda *a: None, Settings(threads=2))
    again._load_learned_tasks()
    assert "caution_lights" in {d.name for d in again.declared}  # a restarted trainer keeps it
    del labels.tasks["caution_lights"]
    gone = Trainer(store, Registry(store), tasks_mod.load(), labels, lambda *a: None, Settings(threads=2))
    gone._load_learned_tasks()
    assert "caution_lights" not in {d.name for d in gone.declared}  # ... while its label store declares it


def test_the_gate_perturbs_case_images_by_a_pixel_each_way():
    import numpy as np

    from trainer.runner import shifted

    image = np.zeros((4, 4, 3), np.uint8)
    image[1, 2] = 255
    moved = shifted({"c": image}, 1)
    assert sorted(tuple(np.argwhere(m["c"][..., 0])[0]) for m in moved) == [(0, 2), (1, 1), (1, 3), (2, 2)]
    assert shifted({"c": image}, 0) == []


def test_a_run_with_a_bad_hyperparameter_is_refused_before_it_is_queued(trainer):
    with pytest.raises(ValueError, match="lr: 5.0 is not a learning rate"):
        trainer.submit(T.RunSpec(model_name="unit", hyperparameters=_hp(lr=5)))
    assert trainer.list() == []


def test_a_run_interrupted_by_a_restart_runs_again_in_its_reserved_version_and_publishes_once(store, labels):
    """A trainer killed after publishing, before the run's SUCCEEDED was saved: the next trainer runs
    it again in the version it had reserved, finds its identical weights already published, and
    no other run takes that version meanwhile."""

    def make(events):
        return Trainer(store, Registry(store), tasks_mod.load(), labels, lambda topic, key, value: events.append((topic, key, value)), Settings(threads=2, default_epochs=1, fallback_samples=64))

    spec = T.RunSpec(model_name="requeued", promote=True, seed=5, epochs=1)
    first_events: list = []
    first = make(first_events)
    first.start(recover=False)
    done = first.wait(first.submit(spec, run_id="run-requeued")[0].run_id, 300)
    first.stop()
    assert done.status == T.RUN_STATUS_SUCCEEDED, done.error
    interrupted = T.Run()
    interrupted.CopyFrom(done)
    interrupted.status, interrupted.phase = T.RUN_STATUS_RUNNING, T.RUN_PHASE_PUBLISHING
    first.registry.save_run(interrupted)  # as a kill -9 in the publishing phase leaves it

    events: list = []
    second = make(events)
    second.start(recover=True)
    try:
        other = second.submit(T.RunSpec(model_name="requeued", promote=True, seed=6, epochs=1))[0]
        again = second.wait("run-requeued", 300)
        assert again.status == T.RUN_STATUS_SUCCEEDED, again.error
        assert again.model.version == done.model.version and again.metrics["run/restarts"] == 1
        assert second.wait(other.run_id, 300).model.version == done.model.version + 1  # not the reserved one
        assert model_repo.list_versions(store, "requeued") == [done.model.version, done.model.version + 1]
    finally:
        second.stop()


def test_a_run_the_label_store_fails_says_why_in_words(trainer, labels, monkeypatch):
    def dataset_missing(name, version=0):
        raise grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"dataset {name} v{version} does not exist")

    monkeypatch.setattr(labels, "dataset", dataset_missing)
    failed = run(trainer, datasets=[C.DatasetRef(name="nowhere", version=3)])
    assert failed.status == T.RUN_STATUS_FAILED
    assert failed.error == "the label store answered NOT_FOUND: dataset nowhere v3 does not exist"


def test_failure_messages_keep_run_errors_as_they_are_and_name_other_exceptions():
    from trainer.runner import RunError, failure_message

    assert failure_message(RunError("no labelled data for stop_sign")) == "no labelled data for stop_sign"
    assert failure_message(KeyError("weights")) == "KeyError: 'weights'"
