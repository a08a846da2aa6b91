"""The task workflow's state machine on a fake engine: every step, its failures, and resuming
(a new Workflow over the same state store goes on where the last one stopped)."""

from __future__ import annotations

import pytest

from longtail.tasks import DeclaredTask, TaskSpec, parse

from task_workflow.engine import Backtest, RunResult
from task_workflow.settings import WorkflowSettings
from task_workflow.state import StateStore, Step
from task_workflow.workflow import Outcome, Workflow, WorkflowError, held_out, trigger_id

PREDICATE = "any(d.cls == vehicle and d.attr.lights != off and d.conf >= 0.5)"
TASK = DeclaredTask(TaskSpec("caution_lights", "detection", ("vehicle",), {"lights": ("off", "hazard", "police")}), "caution lights", suite_name="caution_lights.regressions", suite_predicate=PREDICATE)
SMALL = WorkflowSettings(seed_labels=20, shadow_frames=100, labels_per_iteration=10, suite_cases=6, holdout_every=2, max_iterations=3, upload_budget=1000, fleet_cars=10, budget_horizon_h=1.0)


class FakeEngine:
    """Samples are ids; `positive` ones show the phenomenon. Labelling and driving are explicit."""

    def __init__(self) -> None:
        self.labelled_ids: list[str] = []
        self.by_trigger: dict[str, list[str]] = {}
        self.positive: set[str] = set()
        self.clear: set[str] | None = None  # positives that satisfy a suite admission rule (None: all)
        self.suite: list[str] = []
        self.detector_results: list[RunResult] = []
        self.train_results: list[RunResult] = []
        self.backtests: list[Backtest] = []
        self.triggers: dict[str, object] = {}
        self.active: list[str] = []
        self.datasets: list[tuple[str, list[str]]] = []
        self.calls: list[str] = []

    # the world moving: labellers and the fleet
    def label(self, n: int, trigger: str = "", positive_every: int = 2) -> None:
        start = len(self.labelled_ids) + len(self.suite)
        for i in range(start, start + n):
            sid = f"{i:064x}"
            self.labelled_ids.append(sid)
            if trigger:
                self.by_trigger.setdefault(trigger, []).append(sid)
            if i % positive_every == 0:
                self.positive.add(sid)

    # Engine
    def declare(self, task):
        return "created"

    def labelled(self, task, trigger_id=""):
        ids = self.by_trigger.get(trigger_id, []) if trigger_id else self.labelled_ids
        return [s for s in ids if s not in self.suite]

    def is_positive(self, sample_id, task, predicate):
        if predicate != PREDICATE and self.clear is not None:  # PREDICATE and an admission rule
            return sample_id in self.clear
        return sample_id in self.positive

    def dataset(self, name, task, sample_ids, description):
        self.datasets.append((name, list(sample_ids)))
        return f"{name}@{len(self.datasets)}"

    def train_detector(self, detector, task, dataset, predicate, seed, epochs):
        self.calls.append(f"detector {dataset}")
        self.detector_predicate = predicate
        return self.detector_results.pop(0)

    def ensure_trigger(self, plan):
        self.triggers.setdefault(plan.trigger_id, plan)

    def backtest(self, trigger_id, since):
        return self.backtests.pop(0) if len(self.backtests) > 1 else self.backtests[0]

    def activate(self, trigger_id):
        self.active.append(trigger_id)

    def retire(self, trigger_id, reason):
        self.active.remove(trigger_id)

    def suite_size(self, suite):
        return len(self.suite)

    def promote(self, suite, sample_id, predicate, note):
        assert predicate == PREDICATE and sample_id not in self.suite  # the case tests the suite's predicate, not the admission
        self.suite.append(sample_id)

    def train(self, model, task, dataset, seed, epochs, hyperparameters, promote):
        self.calls.append(f"train {dataset}")
        self.hyperparameters = hyperparameters
        return self.train_results.pop(0)


TID = trigger_id("caution_lights", 1000.0)


def workflow(engine, store, settings=SMALL, clock=lambda: 1000.0):
    return Workflow(TASK, engine, StateStore(store), settings, clock=clock)


def accepted(passed: int, cases: int = 6, regressed=()) -> RunResult:
    return RunResult(True, version=2, reason="ok", suites={"caution_lights.regressions": (passed, cases)}, regressed=list(regressed))


def test_from_declaration_to_certified_with_every_wait_visible(store):
    engine = FakeEngine()
    wf = workflow(engine, store)
    assert wf.advance() is Outcome.WAITING and "20 more labels of caution_lights" in wf.state.waiting_for
    engine.label(20)
    engine.detector_results = [RunResult(True, version=1, reason="val AUC 0.97 >= 0.80")]
    engine.backtests = [Backtest(0, 40, 0.0), Backtest(3, 400, 30.0)]
    assert wf.run() is Outcome.WAITING and wf.state.step == Step.TRIGGER.value
    assert "score 100 frames" in wf.state.waiting_for and engine.active == ["shadow-" + TID]  # shadow mode first, then the backtest
    assert engine.triggers["shadow-" + TID].expression == 'score("caution_lights_detector") > 1'  # on the cars, never fires
    assert wf.run() is Outcome.WAITING and wf.state.step == Step.SOURCING.value
    assert engine.active == [TID] and engine.triggers[TID].expression == 'score("caution_lights_detector") > 0.5'
    assert "10 more labelled uploads" in wf.state.waiting_for

    engine.label(10, trigger=TID)
    engine.train_results = [accepted(2, cases=6)]
    assert wf.run() is Outcome.WAITING and wf.state.iteration == 2  # below target: another round of sourcing
    assert 0 < len(engine.suite) <= 6 and all(held_out(s, 2) and s in engine.positive for s in engine.suite)
    train_ids = engine.datasets[-1][1]
    assert not set(train_ids) & set(engine.suite)  # suite cases never train
    # the task's own branch trained alone: nothing else can move
    assert engine.hyperparameters == {"lr": 0.005, "train_heads": "caution_lights", "branch_blocks": 2}
    assert wf.state.pass_rate == pytest.approx(2 / 6)

    engine.label(40, trigger=TID)
    engine.train_results = [accepted(6, cases=6)]
    assert wf.run() is Outcome.CERTIFIED
    s = wf.state
    assert s.step == "certified" and s.certified_iteration == 2 and s.pass_rate == 1.0 and not s.other_suites_regressed
    assert len(engine.suite) == 6
    steps = [e.step for e in s.history]
    assert steps[0] == "seed_set" and "certified" not in steps[:-1]
    assert StateStore(store).load("caution_lights").step == "certified"  # persisted


def test_a_new_process_resumes_where_the_last_one_stopped(store):
    engine = FakeEngine()
    engine.label(20)
    engine.detector_results = [RunResult(True, version=1)]
    engine.backtests = [Backtest(0, 10, 0.0)]
    first = workflow(engine, store)
    assert first.run() is Outcome.WAITING and first.state.step == "trigger"
    again = workflow(engine, store)  # e.g. the runner was restarted
    assert again.state.step == "trigger" and again.state.detector_version == 1
    assert again.run() is Outcome.WAITING and engine.calls == ["detector caution_lights-seed@1"]  # the detector is not trained twice
    assert sorted(engine.triggers) == sorted([TID, "shadow-" + TID]) and engine.active == ["shadow-" + TID]  # nothing created or activated twice


def test_a_refused_detector_asks_for_a_larger_seed_set_then_blocks_and_resumes(store):
    engine = FakeEngine()
    engine.label(20)
    engine.detector_results = [RunResult(False, reason="val AUC 0.61 < 0.80")] * 3
    wf = workflow(engine, store)
    assert wf.run() is Outcome.WAITING
    assert wf.state.seed_attempt == 2 and wf.state.seed_wanted == 40 and "20 more labels" in wf.state.waiting_for
    engine.label(20)
    assert wf.run() is Outcome.WAITING and wf.state.seed_wanted == 80
    engine.label(40)
    assert wf.run() is Outcome.BLOCKED
    assert wf.state.blocked_step == "detector" and "failed its gate on 3 seed sets" in wf.state.blocked_reason
    assert wf.advance() is Outcome.BLOCKED  # stays blocked until resumed
    wf.resume()
    engine.detector_results = [RunResult(True, version=4)]
    engine.backtests = [Backtest(0, 10, 0.0)]
    assert wf.run() is Outcome.WAITING and wf.state.step == "trigger" and wf.state.detector_version == 4
    with pytest.raises(WorkflowError, match="not blocked"):
        wf.resume()


def test_a_trigger_whose_backtest_exceeds_the_budget_is_not_activated_and_says_why(store):
    engine = FakeEngine()
    engine.label(20)
    engine.detector_results = [RunResult(True, version=1)]
    engine.backtests = [Backtest(500, 1000, 500.0)]  # 500/car-hour x 10 cars x 1 h = 5,000 > 1,000
    wf = workflow(engine, store)
    assert wf.run() is Outcome.BLOCKED
    assert engine.active == ["shadow-" + TID]  # the detector keeps scoring in shadow mode; its trigger is not active
    reason = wf.state.blocked_reason
    assert "not activated" in reason and "5,000 uploads expected" in reason and "upload budget of 1,000" in reason
    # the operator raises the budget in tasks.yaml and resumes
    wider = Workflow(TASK, engine, StateStore(store), WorkflowSettings.from_dict({"upload_budget": 10_000}, SMALL), clock=lambda: 1000.0)
    wider.resume()
    assert wider.run() is Outcome.WAITING and engine.active == [TID]  # the shadow trigger retired


def sourcing(store):
    """A workflow whose trigger is active: seed set labelled, detector accepted, backtest within budget."""
    engine = FakeEngine()
    engine.label(20)
    engine.detector_results = [RunResult(True, version=1)]
    engine.backtests = [Backtest(1, 500, 1.0)]
    wf = workflow(engine, store)
    assert wf.run() is Outcome.WAITING and wf.state.step == Step.SOURCING.value
    return engine, wf


def test_gate_refusals_count_as_iterations_and_the_last_one_blocks(store):
    engine, wf = sourcing(store)
    engine.train_results = [RunResult(False, version=3, reason="stop_sign.occluded regressed: 3 cases", regressed=["stop_sign.occluded"])] * 3
    for _ in range(3):
        engine.label(10, trigger=TID)
        outcome = wf.run()
    assert outcome is Outcome.BLOCKED and "not certified after 3 iterations" in wf.state.blocked_reason
    assert "refused by the gate" in wf.state.blocked_reason and not wf.state.other_suites_regressed  # refused: never published
    assert wf.state.model_version == 0
    wf.resume()  # one more round: train again, then source more
    engine.train_results = [RunResult(False, reason="still regressed")]
    assert wf.run() is Outcome.WAITING and wf.state.step == Step.SOURCING.value and wf.state.iteration == 3


def test_an_accepted_version_that_regressed_another_suite_is_recorded(store):
    engine, wf = sourcing(store)
    engine.label(10, trigger=TID)
    engine.train_results = [accepted(1, regressed=["stop_sign.occluded"])]  # e.g. within a waiver
    wf.run()
    assert wf.state.other_suites_regressed


def test_without_a_branch_the_whole_network_is_fine_tuned_rehearsing_the_other_tasks(store):
    engine = FakeEngine()
    engine.label(20)
    engine.detector_results, engine.backtests = [RunResult(True, version=1)], [Backtest(1, 500, 1.0)]
    wf = workflow(engine, store, WorkflowSettings.from_dict({"branch_blocks": 0, "lr": 0.001}, SMALL))
    assert wf.run() is Outcome.WAITING and wf.state.step == Step.SOURCING.value
    engine.label(10, trigger=TID)
    engine.train_results = [accepted(1)]
    wf.run()
    assert engine.hyperparameters == {"lr": 0.001, "replay_samples": SMALL.replay_samples, "replay_world": "default"}


def test_the_admission_rule_decides_what_the_detector_sources_and_what_becomes_a_suite_case(store):
    rule = "any(d.cls == vehicle and d.height >= 0.09)"
    engine = FakeEngine()
    engine.label(20)
    engine.detector_results, engine.backtests = [RunResult(True, version=1)], [Backtest(1, 500, 1.0)]
    wf = workflow(engine, store, WorkflowSettings.from_dict({"suite_admission": rule}, SMALL))
    assert wf.run() is Outcome.WAITING and wf.state.step == Step.SOURCING.value
    assert engine.detector_predicate == f"({PREDICATE}) and ({rule})"  # the trigger looks for what the suite admits
    engine.label(10, trigger=TID)
    engine.clear = set(sorted(engine.positive)[::2])
    engine.train_results = [accepted(1)]
    wf.run()
    assert engine.suite and set(engine.suite) <= engine.clear & engine.positive
    assert any(held_out(s, 2) and s in engine.positive and s not in engine.clear for s in engine.labelled_ids)  # one was left out


def test_settings_are_validated_and_a_task_needs_a_positive_predicate(store):
    with pytest.raises(ValueError, match="workflow.seed_lables: unknown setting"):
        WorkflowSettings.from_dict({"seed_lables": 10})
    with pytest.raises(ValueError, match="workflow.upload_budget: 'lots' is not a int"):
        WorkflowSettings.from_dict({"upload_budget": "lots"})
    with pytest.raises(ValueError, match="at least 1"):
        WorkflowSettings.from_dict({"suite_cases": 0})
    assert WorkflowSettings.from_dict({"promote": "false", "target": "0.8"}).promote is False
    with pytest.raises(ValueError, match="workflow.suite_admission: "):
        WorkflowSettings.from_dict({"suite_admission": "any(d.cls == vehicle and"})
    bare = DeclaredTask(TASK.spec, suite_name="caution_lights.regressions")
    with pytest.raises(WorkflowError, match="needs a predicate"):
        Workflow(bare, FakeEngine(), StateStore(store))


def test_tasks_yaml_carries_the_workflow_settings():
    declared = parse("""
tasks:
  - name: caution_lights
    prototype: detection
    classes: [vehicle]
    attributes: {lights: [off, hazard, police]}
    suite: {name: caution_lights.regressions, predicate: "any(d.cls == vehicle and d.attr.lights != off)"}
    workflow: {seed_labels: 300, suite_cases: 50, replay_world: common, lr: 0.002}
""")
    settings = WorkflowSettings.from_dict(declared[0].workflow)
    assert settings.seed_labels == 300 and settings.replay_world == "common" and settings.lr == 0.002


def test_a_label_is_a_positive_when_it_satisfies_the_suite_predicate():
    from longtail.common.v1 import common_pb2 as C
    from longtail.triggerlang.predicates import label_matches

    def label(lights):
        out = C.TaskOutput(detection=C.DetectionOutput())
        d = out.detection.detections.add(cls="vehicle", box=C.BoundingBox(x_min=0.1, y_min=0.1, x_max=0.3, y_max=0.3))
        d.attributes["lights"] = lights
        return out

    assert label_matches(PREDICATE, "caution_lights", label("hazard"))
    assert not label_matches(PREDICATE, "caution_lights", label("off"))
    assert not label_matches(PREDICATE, "caution_lights", C.TaskOutput(detection=C.DetectionOutput()))


def test_a_task_declared_afresh_archives_the_workflow_of_its_earlier_declaration(store):
    engine = FakeEngine()
    old = workflow(engine, store, clock=lambda: 500.0)
    old.state.note("something the earlier declaration did")
    StateStore(store).save(old.state)
    again = Workflow(TASK, engine, StateStore(store), SMALL, clock=lambda: 1000.0, fresh=True)
    assert again.state.declared_at == 1000.0 and len(again.state.history) == 1
    assert StateStore(store).tasks() == ["caution_lights"]  # the archive is not a workflow
    assert any(k.startswith("workflows/archive/caution_lights@500.000") for k in store.objects)
    assert workflow(engine, store).state.declared_at == 1000.0  # without fresh: resumed


def test_the_workflow_keeps_its_declaration_and_a_resume_with_a_new_one_replaces_it(store):
    from task_workflow.workflow import declared_task

    engine = FakeEngine()
    wf = workflow(engine, store)
    kept = declared_task(StateStore(store).load("caution_lights"))
    assert kept == TASK and Workflow.of(StateStore(store).load("caution_lights"), engine, StateStore(store)).state.declared_at == 1000.0
    wider = DeclaredTask(TASK.spec, TASK.description, suite_name=TASK.suite_name, suite_predicate=PREDICATE, workflow={"upload_budget": 9})
    Workflow(wider, engine, StateStore(store), SMALL)
    assert declared_task(StateStore(store).load("caution_lights")).workflow == {"upload_budget": 9}
    assert wf.state.task == "caution_lights"


def test_a_suite_regressed_when_it_lost_a_stable_case_or_pass_rate_not_a_chance_pass():
    from longtail.models.v1 import trainer_pb2 as T

    from task_workflow.engine import suite_regressed

    assert not suite_regressed(T.SuiteGate(before_pass_rate=0.6, after_pass_rate=0.9, regressed_case_ids=["a"], unstable_case_ids=["a"]))
    assert suite_regressed(T.SuiteGate(before_pass_rate=0.6, after_pass_rate=0.9, regressed_case_ids=["a", "b"], unstable_case_ids=["a"]))
    assert suite_regressed(T.SuiteGate(before_pass_rate=0.6, after_pass_rate=0.5, regressed_case_ids=["a"], unstable_case_ids=["a"]))
