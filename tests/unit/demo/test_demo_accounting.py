"""Labels-to-target bookkeeping, the arms' picks and the label schedule, and the summary's shape,
on recorded figures (no services)."""

from __future__ import annotations

import json
import math

import pytest

from demo import report
from demo.accounting import ArmLedger, Candidate, DemoResult, Experiment, SuiteScore, TriggerStats
from demo.arms import ArmContext, PoolSample, RandomArm, SeedOnlyArm, TriggeredArm, UncertaintyArm, budget_schedule

SUITE = "stop_sign.occluded"


def candidate(iteration: int, arm: str, labels: int, passed: int, cases: int = 100, accepted: bool = False, seed_labels: int = 60) -> Candidate:
    c = Candidate(
        iteration,
        arm,
        labels,
        labels - seed_labels,
        f"ds@{iteration}",
        run_id=f"r{iteration}",
        status="SUCCEEDED" if accepted else "REFUSED",
        accepted=accepted,
        version=iteration + 1,
        candidate={SUITE: SuiteScore(passed, cases), "other": SuiteScore(cases, cases)},
    )
    c.production = dict(c.candidate) if accepted else {SUITE: SuiteScore(40, cases), "other": SuiteScore(cases, cases)}
    return c


def test_labels_to_target_is_the_first_candidate_at_or_above_the_target():
    ledger = ArmLedger("triggered", SUITE, 0.95)
    assert ledger.labels_to_target is None and not ledger.done() and ledger.labels_spent == 0
    ledger.record(candidate(1, "triggered", 100, 94))
    assert ledger.labels_to_target is None and not ledger.done()
    ledger.record(candidate(2, "triggered", 180, 95))  # 95/100 is the target exactly
    ledger.record(candidate(3, "triggered", 340, 99))
    assert ledger.labels_to_target == 180 and ledger.done() and ledger.labels_spent == 340
    assert ledger.final()[SUITE].passed == 99


def test_the_cap_ends_an_arm_that_never_reaches_the_target_and_labels_never_go_down():
    ledger = ArmLedger("random", SUITE, 0.95)
    ledger.record(candidate(1, "random", 100, 80))
    ledger.label_cap = 1000
    assert not ledger.done()
    ledger.record(candidate(2, "random", 1000, 90))
    assert ledger.done() and ledger.labels_to_target is None
    with pytest.raises(ValueError):
        ledger.record(candidate(3, "random", 900, 90))


def test_a_candidate_on_target_that_broke_another_suite_does_not_count():
    ledger = ArmLedger("random", SUITE, 0.95, tolerance=0.02, baseline={SUITE: SuiteScore(50, 100), "other": SuiteScore(98, 100)})
    fires_everywhere = candidate(1, "random", 100, 97)
    fires_everywhere.candidate["other"] = SuiteScore(95, 100)  # 3 points below the baseline: more than the tolerance
    ledger.record(fires_everywhere)
    assert ledger.on_target(fires_everywhere) and ledger.regressed(fires_everywhere) == ["other"]
    assert ledger.labels_to_target is None and not ledger.done()
    within = candidate(2, "random", 200, 96)
    within.candidate["other"] = SuiteScore(96, 100)  # 2 points: within the tolerance
    ledger.record(within)
    assert ledger.regressed(within) == [] and ledger.labels_to_target == 200
    # the target suite itself may only go up; a suite the baseline has no figure for cannot block
    assert ledger.regressed(candidate(3, "random", 300, 40)) == []


def test_a_suite_without_cases_never_reaches_a_target():
    ledger = ArmLedger("triggered", SUITE, 0.95)
    ledger.record(candidate(1, "triggered", 100, 0, cases=0))
    assert ledger.labels_to_target is None


def test_budget_schedule_is_the_same_for_every_arm_and_grows_geometrically():
    assert [budget_schedule(40, 2.0, i) for i in (1, 2, 3, 4)] == [40, 80, 160, 320]
    assert [budget_schedule(40, 1.0, i) for i in (1, 2, 3)] == [40, 40, 40]
    with pytest.raises(ValueError):
        budget_schedule(40, 2.0, 0)


def pool(*items):
    return [PoolSample(sid, trig, ns) for sid, trig, ns in items]


def test_triggered_arm_spends_on_the_triggers_whose_paid_labels_showed_the_case_and_never_repicks():
    arm = TriggeredArm()
    p = pool(*[(f"d{i}", "detector", i) for i in range(10)], *[(f"u{i}", "unsure", i) for i in range(10)], ("m0", "map", 5))
    ctx = ArmContext(seed=0, priorities={"detector": 3, "map": 2, "unsure": 1})
    first = arm.pick(p, 5, ctx)  # nothing paid for yet: every estimate is 1/2, ties by priority
    assert first == ["d0", "d1", "d2", "d3", "d4"] and arm.picked_from == {"detector": first}
    # the detector's picks showed the case, the map's did not: the detector gets the budget
    shown = {"d0", "d1", "d2", "d3"}
    arm.picked_from = {"detector": ["d0", "d1", "d2", "d3"], "map": ["m0"]}
    ctx = ArmContext(seed=0, priorities=ctx.priorities, positive=lambda sid: sid in shown)
    second = arm.pick(p, 5, ctx)
    assert second == ["u0", "d5", "d6", "d7", "d8"]  # one exploration pick for the unmeasured trigger, the rest by yield
    assert not set(first) & set(second)
    assert len(arm.pick(p, 100, ctx)) == len(p) - 10  # what is left
    assert arm.pick(p, 4, ctx) == []


def test_random_arm_draws_without_replacement_reproducibly():
    p = pool(*[(f"s{i:03d}", "random", i) for i in range(100)])
    a, b = RandomArm(), RandomArm()
    first = a.pick(p, 30, ArmContext(seed=1))
    assert first == b.pick(p, 30, ArmContext(seed=1)) and len(set(first)) == 30
    assert first != sorted(first)  # not capture order
    second = a.pick(p, 30, ArmContext(seed=1))
    assert not set(first) & set(second)
    assert RandomArm().pick(p, 30, ArmContext(seed=2)) != first


def test_uncertainty_arm_takes_the_highest_entropy_and_seed_only_takes_nothing():
    p = pool(("x", "random", 1), ("y", "random", 2), ("z", "random", 3))
    scores = {"x": 0.1, "y": 0.9, "z": 0.5}
    ctx = ArmContext(seed=0, entropy=lambda arm, samples: [scores[s.sample_id] for s in samples])
    arm = UncertaintyArm()
    assert arm.pick(p, 2, ctx) == ["y", "z"] and arm.pick(p, 2, ctx) == ["x"]
    seed_only = SeedOnlyArm()
    assert not seed_only.uses_fleet and seed_only.pick(p, 5, ctx) == []


def experiment() -> Experiment:
    exp = Experiment(seed=0, suffix="abc-s0", target=0.95, cases={"occluded": SUITE}, suites={SUITE: 100, "other": 100}, seed_labels=60)
    exp.baseline = {SUITE: SuiteScore(40, 100), "other": SuiteScore(100, 100)}
    exp.arms = {n: ArmLedger(n, SUITE, 0.95) for n in ("triggered", "random", "uncertainty", "seed-only")}
    exp.arms["triggered"].record(candidate(1, "triggered", 100, 90, accepted=True))
    exp.arms["triggered"].record(candidate(2, "triggered", 180, 97))
    exp.arms["triggered"].label_cap = 180
    for name in ("random", "uncertainty"):
        exp.arms[name].label_cap = 1800
        for i, (labels, passed) in enumerate(((100, 85), (180, 86), (1800, 92)), 1):
            exp.arms[name].record(candidate(i, name, labels, passed))
    exp.arms["seed-only"].record(candidate(1, "seed-only", 60, 88))
    exp.triggers = [
        TriggerStats("detector-stop-abc-s0", "triggered", 'score("d") > 0.7', fires=50, uploads=40, labelled=40, true_positive=12),
        TriggerStats("random-abc-s0", "random", "true", fires=2000, uploads=1000, labelled=1000, true_positive=5),
    ]
    exp.fleet = [{"label": "i1", "frames": 24000, "case_frames": 120, "fires": {}, "uploads": 1040, "upload_errors": 0, "wall_s": 50.0}]
    return exp


def test_summary_has_the_keys_other_tools_read_and_figures_from_the_ledgers(tmp_path):
    result = DemoResult(run="abc", config={"cap_factor": 10.0}, experiments=[experiment()], wall_seconds=600.0)
    path = report.write(result, tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert {"target", "arms", "suites", "triggers", "base_rate", "wall_seconds", "seeds"} <= set(s)
    assert s["target"] == 0.95 and s["seeds"] == [0] and s["wall_seconds"] == 600.0 and s["suites"] == {SUITE: {"cases": 100}, "other": {"cases": 100}}
    assert s["arms"]["triggered"] == {
        "labels_to_target": 180,
        "labels_to_target_by_seed": [180],
        "seeds_reached": 1,
        "label_cap": 180,
        "final_candidate_pass": {SUITE: 0.97, "other": 1.0},
        "final_production_pass": {SUITE: 0.4, "other": 1.0},
    }
    assert s["arms"]["random"]["labels_to_target"] is None and s["arms"]["random"]["label_cap"] == 1800
    assert s["arms"]["seed-only"]["label_cap"] == 60 and s["arms"]["seed-only"]["final_candidate_pass"][SUITE] == 0.88
    assert s["base_rate"] == 0.005
    det = next(t for t in s["triggers"] if t["id"] == "detector-stop-abc-s0")
    assert det["labelled_uploads"] == 40 and det["true_positive"] == 12 and det["yield"] == 0.3
    assert det["yield_vs_base_rate"] == pytest.approx(60.0) and det["yield_vs_base_rate_ci95"][0] < 60.0 < det["yield_vs_base_rate_ci95"][1]
    md = path.read_text()
    assert "| triggered | 180 | 180 |" in md and "| random | > 1800 | 1800 |" in md and "> 10.0× (did not reach it)" in md
    assert "97% [92%, 99%] (97/100)" in md  # the triggered arm's final candidate with its Wilson interval
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiments"][0]["arms"]["triggered"]["labels_to_target"] == 180
    for png in ("labels_to_target.png", "yield.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_several_seeds_summarise_with_the_median_and_null_when_a_seed_missed(tmp_path):
    a, b, c = experiment(), experiment(), experiment()
    b.seed, c.seed = 1, 2
    b.arms["triggered"].candidates[-1].candidate[SUITE] = SuiteScore(93, 100)  # seed 1 never reached it
    result = DemoResult(run="abc", config={}, experiments=[a, b, c], wall_seconds=1.0)
    report.write(result, tmp_path)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["seeds"] == [0, 1, 2] and s["arms"]["triggered"]["labels_to_target"] is None
    assert s["arms"]["triggered"]["labels_to_target_by_seed"] == [180, None, 180]
    assert s["arms"]["seed-only"]["labels_to_target"] is None
    assert math.isclose(s["arms"]["triggered"]["final_candidate_pass"][SUITE], (0.97 + 0.93 + 0.97) / 3)
    assert len(s["per_seed"]) == 3 and len(s["triggers"]) == 6
    assert s["arms"]["triggered"]["seeds_reached"] == 2
    md = (tmp_path / "report.md").read_text()
    assert "## Over seeds" in md and "| triggered | 180, > cap, 180 | 2/3 | 180 |" in md


def test_an_interrupted_run_still_writes_the_report_of_what_it_finished(tmp_path, monkeypatch):
    from demo import loop

    def interrupted(self):
        partial = experiment()
        partial.notes.append("seed 0 was interrupted (KeyboardInterrupt: ); the figures are those of its finished iterations")
        self.result.experiments.append(partial)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.Demo, "run", interrupted)
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        loop.run(loop.DemoConfig(out=tmp_path), say=said.append)
    assert "seed 0 was interrupted" in (tmp_path / "report.md").read_text()
    assert json.loads((tmp_path / "summary.json").read_text())["arms"]["triggered"]["labels_to_target"] == 180
    assert any("interrupted" in m for m in said)


def test_the_triggered_arms_exploration_share_is_configurable():
    p = pool(*[(f"d{i}", "detector", i) for i in range(10)], *[(f"u{i}", "unsure", i) for i in range(10)], *[(f"m{i}", "map", i) for i in range(10)])
    ctx = ArmContext(seed=0, priorities={"detector": 3, "map": 2, "unsure": 1})
    assert TriggeredArm(explore=0.0).pick(p, 6, ctx) == [f"d{i}" for i in range(6)]  # all by estimate (ties by priority)
    even = TriggeredArm(explore=1.0).pick(p, 6, ctx)
    assert sorted(even) == ["d0", "d1", "m0", "m1", "u0", "u1"]  # an even split
