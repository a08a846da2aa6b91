"""Several long-tail cases at once: the scenario's suites and triggers, labels to target per case's
suite, yield of each case against its own base rate, and the report's case section (no services)."""

from __future__ import annotations

import json

import pytest

from demo import report
from demo.accounting import ArmLedger, Candidate, DemoResult, Experiment, SuiteScore, TriggerStats
from demo.scenario import CASES, EXCEPT_RIGHT_TURN, HANDHELD, OCCLUDED, Scenario, detector_trigger_id, trigger_plans

OCC, ERT = OCCLUDED.suite, EXCEPT_RIGHT_TURN.suite


def scored(iteration: int, labels: int, occ: int, ert: int, other: int = 100) -> Candidate:
    return Candidate(iteration, "triggered", labels, labels - 100, f"ds@{iteration}", candidate={OCC: SuiteScore(occ, 100), ERT: SuiteScore(ert, 100), "other": SuiteScore(other, 100)})


def test_a_scenario_has_one_suite_per_case_plus_the_common_ones_each_on_its_own_held_out_world():
    s = Scenario(cases=(OCCLUDED, EXCEPT_RIGHT_TURN, HANDHELD), suite_cases=5)
    names = [spec.name for spec in s.suites]
    assert names[:3] == [OCC, ERT, HANDHELD.suite] and len(names) == 6 == len(set(names))
    assert len({spec.world_seed for spec in s.suites}) == 6  # held out from each other and from the fleet's worlds
    assert s.case_suites == [OCC, ERT, HANDHELD.suite] and s.tasks == ["stop_sign"]
    assert "d.attr.modifier == except_right_turn" in s.suites[1].predicate and "d.attr.mount == handheld" in s.suites[2].predicate
    assert set(CASES) == {"occluded", "except_right_turn", "handheld", "on_gate", "temporary"}
    assert len({c.world_seed for c in CASES.values()} | {c.seed_world for c in CASES.values()}) == 2 * len(CASES)
    # a plain sign must be detected as a plain one (an attribute case's candidate may not call every sign by the case)
    assert all(f"d.attr.{k} ==" in s.suites[3].predicate for k in ("mount", "modifier", "temporary")) and s.suites[3].name == "stop_sign.regressions"
    with pytest.raises(ValueError):
        Scenario(cases=(OCCLUDED, OCCLUDED))
    with pytest.raises(ValueError):
        Scenario(cases=())
    assert Scenario().case_suites == [OCC]  # the single-case default

    def fixed(spec):
        return spec.name, spec.world_seed, spec.sample_seed, spec.predicate

    # a suite is the same whichever cases run beside it (its frames depend on its own seeds only)
    assert fixed(Scenario(cases=(HANDHELD,)).suites[0]) == fixed(s.suites[2])
    assert [fixed(x) for x in Scenario(cases=(HANDHELD,)).suites[1:]] == [fixed(x) for x in s.suites[3:]]


def test_cases_shown_reads_the_ground_truth_attributes():
    s = Scenario(cases=(OCCLUDED, EXCEPT_RIGHT_TURN, HANDHELD))
    plate = {"cls": "stop_sign", "attributes": {"modifier": "except_right_turn", "mount": "pole"}}
    held = {"cls": "stop_sign", "attributes": {"modifier": "none", "mount": "handheld"}}
    plain = {"cls": "stop_sign", "attributes": {"modifier": "none", "mount": "pole"}}
    assert s.cases_shown([plate, held]) == ["except_right_turn", "handheld"]
    assert s.cases_shown([plain]) == []


def test_every_published_detector_gets_its_own_trigger_and_the_shared_ones_stay():
    plans = trigger_plans("abc-s0", {"occluded": "occ_d", "handheld": "hand_d"}, 60.0, 2, 15)
    ids = [p.trigger_id for p in plans]
    assert ids[:2] == [detector_trigger_id("occluded", "abc-s0"), detector_trigger_id("handheld", "abc-s0")]
    assert ids[0] == "detector-stop-abc-s0" and ids[1] == "detector-handheld-abc-s0"  # the occluded id is what older reports used
    assert 'score("hand_d")' in plans[1].expression and len(set(ids)) == len(ids)
    assert [p.trigger_id for p in trigger_plans("abc-s0", {}, 60.0, 2, 15)] == ids[2:]  # no detector published: the others still run


def test_labels_to_target_per_case_and_on_every_case_at_once():
    ledger = ArmLedger("triggered", (OCC, ERT), 0.90, baseline={OCC: SuiteScore(50, 100), ERT: SuiteScore(0, 100), "other": SuiteScore(100, 100)})
    ledger.record(scored(1, 140, 92, 10))
    assert ledger.labels_to(OCC) == 140 and ledger.labels_to(ERT) is None and ledger.labels_to_target is None
    assert ledger.short_of_target() == [ERT] and not ledger.done()
    ledger.record(scored(2, 220, 89, 91))  # on target for ERT, but OCC fell below: not both on one candidate
    assert ledger.labels_to(ERT) == 220 and ledger.labels_to_target is None and ledger.short_of_target() == []
    ledger.record(scored(3, 380, 93, 95, other=97))  # both on target, but another suite fell 3 points
    assert ledger.labels_to_target is None and ledger.regressed(ledger.candidates[-1]) == ["other"]
    ledger.record(scored(4, 700, 93, 95, other=99))
    assert ledger.labels_to_target == 700 and ledger.done()
    # The other case's suite is not a "regression" of this case's: it is a target of its own.
    assert ledger.regressed(ledger.candidates[0], OCC) == []


def multi_case_experiment() -> Experiment:
    exp = Experiment(seed=0, suffix="abc-s0", target=0.90, cases={"occluded": OCC, "except_right_turn": ERT}, suites={OCC: 100, ERT: 100, "other": 100}, seed_labels=120)
    exp.baseline = {OCC: SuiteScore(50, 100), ERT: SuiteScore(0, 100), "other": SuiteScore(100, 100)}
    for name in ("triggered", "random"):
        exp.arms[name] = ArmLedger(name, (OCC, ERT), 0.90, baseline=exp.baseline)
    exp.arms["triggered"].record(scored(1, 160, 92, 40))
    exp.arms["triggered"].record(scored(2, 240, 93, 91))
    exp.arms["triggered"].label_cap = 240
    exp.arms["random"].record(Candidate(1, "random", 160, 60, "ds@1", candidate={OCC: SuiteScore(70, 100), ERT: SuiteScore(5, 100), "other": SuiteScore(100, 100)}))
    exp.arms["random"].label_cap = 2400
    exp.triggers = [
        TriggerStats("detector-stop-abc-s0", "triggered", "x", case="occluded", labelled=40, true_positive=20, by_case={"occluded": 20}),
        TriggerStats("detector-except-right-turn-abc-s0", "triggered", "y", case="except_right_turn", labelled=50, true_positive=30, by_case={"except_right_turn": 30}),
        TriggerStats("random-abc-s0", "random", "true", labelled=1000, true_positive=15, by_case={"occluded": 10, "except_right_turn": 5}),
    ]
    exp.picked_by_trigger = {"detector-stop-abc-s0": 40, "detector-except-right-turn-abc-s0": 100}
    exp.fleet = [{"label": "i1", "frames": 24000, "case_frames": 120, "fires": {}, "uploads": 1040, "upload_errors": 0, "wall_s": 50.0}]
    return exp


def test_each_case_has_its_own_base_rate_and_lift():
    exp = multi_case_experiment()
    assert exp.case_base_rate("except_right_turn").k == 5 and exp.base_rate.k == 15
    lift, low, high = exp.case_lift(exp.triggers[1], "except_right_turn")
    assert lift == pytest.approx((30 / 50) / (5 / 1000)) and low < lift < high
    assert exp.triggers[1].case_yield("occluded").k == 0


def test_the_report_and_summary_show_every_case(tmp_path):
    exp = multi_case_experiment()
    report.write(DemoResult(run="abc", config={}, experiments=[exp], wall_seconds=60.0), tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["target_suite"] == OCC and s["target_suites"] == [OCC, ERT]
    assert s["arms"]["triggered"]["labels_to_target"] == 240 and s["arms"]["random"]["labels_to_target"] is None
    ert = s["cases"]["except_right_turn"]
    assert ert["suite"] == ERT and ert["labels_to_target_by_arm"] == {"triggered": 240, "random": None}
    assert ert["labels_to_target"] == 240 and ert["final_pass"] == pytest.approx(0.91)  # the shape: the data engine's figures
    assert ert["trigger_yield_vs_base_rate"] == pytest.approx(120.0)
    assert s["cases"]["occluded"]["labels_to_target"] == 160 and s["cases"]["occluded"]["trigger_yield_vs_base_rate"] == pytest.approx(50.0)
    per_seed = s["per_seed"][0]["cases"]["except_right_turn"]
    assert per_seed["triggers"]["detector-except-right-turn-abc-s0"]["yield_vs_base_rate"] == pytest.approx(120.0)
    assert per_seed["final_candidate_pass"] == {"triggered": 0.91, "random": 0.05}
    md = (tmp_path / "report.md").read_text()
    assert "### Cases (seed 0)" in md and f"| except_right_turn | {ERT} |" in md and "30/50 = 120.0×" in md
    assert f"Which case needs data next (the triggered arm's final candidate, lowest first; below the target is failing): {ERT} 91%, {OCC} 93%." in md
    assert "detector-except-right-turn-abc-s0 100 (71%)" in md


def test_detector_triggers_name_their_case():
    plans = trigger_plans("abc-s0", {"occluded": "occ_d", "handheld": "hand_d"}, 60.0, 2, 15)
    assert [p.case for p in plans[:2]] == ["occluded", "handheld"] and all(p.case == "" for p in plans[2:])


def test_a_new_task_declared_in_the_run_is_in_the_summary_and_the_report(tmp_path):
    exp = multi_case_experiment()
    exp.new_task = {
        "name": "caution_lights",
        "declared_at_iteration": 2,
        "certified_at_iteration": 5,
        "labels": 640,
        "minutes": 12.345,
        "other_suites_regressed": False,
        "step": "certified",
        "waiting_for": "",
        "blocked_reason": "",
        "pass_rate": 0.92,
        "suite_cases": 100,
        "model_version": 4,
        "history": [{"at": 100.0, "step": "seed_set", "what": "declared (detection, classes vehicle)"}, {"at": 820.0, "step": "train", "what": "certified: v4 92/100 >= 90%"}],
    }
    report.write(DemoResult(run="abc", config={}, experiments=[exp], wall_seconds=60.0), tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["new_task"] == {"name": "caution_lights", "declared_at_iteration": 2, "certified_at_iteration": 5, "labels": 640, "minutes": 12.35, "other_suites_regressed": False}
    md = (tmp_path / "report.md").read_text()
    assert "### A new task declared at iteration 2: caution_lights" in md
    assert "**certified at iteration 5**, 3 iterations, 640 labels and 12.3 minutes after its declaration" in md and "| +12.0 min | train |" in md
    exp.new_task = None
    report.write(DemoResult(run="abc", config={}, experiments=[exp], wall_seconds=60.0), tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["new_task"] is None


def test_the_attribute_cases_detector_triggers_fire_only_where_the_attribute_is_legible():
    plans = {p.case: p for p in trigger_plans("abc-s0", {"occluded": "occ_d", "except_right_turn": "ert_d", "handheld": "hand_d"}, 60.0, 2, 15) if p.case}
    assert plans["occluded"].expression == 'score("occ_d") > 0.5 and any(d.cls == stop_sign)'
    assert plans["except_right_turn"].expression == 'score("ert_d") > 0.5 and any(d.cls == stop_sign and d.height >= 0.125)'
    from longtail.triggerlang import compile_trigger

    for p in plans.values():
        compile_trigger(p.expression)  # valid trigger language
