"""`longtail demo` at a tiny size through the real processes (gateway, trigger-evaluator,
label-store, inference, trainer, map-vision) on the real broker, S3 and Triton: every arm starts
from the same baseline and seed set, the summary's figures are the run's (recomputed here from
results.json), the report shows them, and no service outlives the demo. Two long-tail cases at
once (occluded, handheld): each its own suite, seed close-ups, detector and detector trigger."""

from __future__ import annotations

import json

from longtail.stats import wilson

from demo import loop, report

ARMS = {"triggered", "random", "uncertainty", "seed-only"}


def test_demo_experiment_writes_a_summary_that_results_and_report_agree_with(kafka, s3, triton, tmp_path):
    config = loop.DemoConfig(
        cars=6, budget=10, growth=2.0, max_iterations=2, duration_s=30.0, fps=10.0, suite_cases=20, epochs=2, seed_examples=8, per_car_uploads=2, random_per_car=6, out=tmp_path / "demo", manage_infra=False, cases=["occluded", "handheld"]
    )
    said: list[str] = []
    result, path, engine = loop.run(config, say=said.append)

    # every service ran as its own process and is gone now
    assert set(engine.processes) == {"label-store", "gateway", "trigger-evaluator", "trainer", "inference", "map-vision"}
    assert all(p.proc is not None and p.proc.poll() is not None for p in engine.processes.values())

    out = tmp_path / "demo"
    data = json.loads((out / "results.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert data["run"] == result.run and path.exists()
    assert {"target", "arms", "suites", "triggers", "base_rate", "wall_seconds", "seeds"} <= set(summary)
    assert summary["seeds"] == [0] and summary["target"] == config.target and summary["wall_seconds"] > 0
    assert set(summary["arms"]) == ARMS
    (exp,) = data["experiments"]
    assert summary["suites"] == {s: {"cases": n} for s, n in exp["suites"].items()} and all(n == 20 for n in exp["suites"].values())

    # the same start: one baseline for every arm's first gate, the seed set in every dataset
    seed_labels = exp["seed_labels"]
    assert seed_labels == (len(config.cases) + 4) * config.seed_examples  # close-ups per case, shared fleet-like negatives
    for ledger in exp["arms"].values():
        first = ledger["candidates"][0]
        assert first["iteration"] == 1 and first["labels"] == seed_labels + first["fleet_labels"], first
        assert all(c["labels"] == seed_labels + c["fleet_labels"] for c in ledger["candidates"])
        assert all(c["datasets_used"] and not any(d.startswith("generator:") for d in c["datasets_used"]) for c in ledger["candidates"])
        assert all("replay:common" in c["datasets_used"] for c in ledger["candidates"])  # the same recipe
    # the same label budget per iteration: no arm exceeds the schedule, and the two arms drawing on
    # the same random pool have the same count at every iteration
    for iteration in (1, 2):
        added = {n: next((c["fleet_labels"] for c in arm["candidates"] if c["iteration"] == iteration), None) for n, arm in exp["arms"].items()}
        assert all(v <= config.budget * (2**iteration - 1) for v in added.values() if v is not None), added
        if added["random"] is not None and added["uncertainty"] is not None:
            assert added["random"] == added["uncertainty"], added
    assert [c["fleet_labels"] for c in exp["arms"]["seed-only"]["candidates"]] == [0]

    # labels to target: the first candidate reaching the target on the case's suite with no other
    # suite more than the tolerance below the baseline, recomputed
    suites = summary["target_suites"]
    assert summary["target_suite"] == suites[0] and set(summary["cases"]) == {"occluded", "handheld"}
    assert suites == [summary["cases"][c]["suite"] for c in ("occluded", "handheld")] and all(s in summary["suites"] for s in suites)

    def share(score):
        return score["passed"] / score["cases"]

    def reached(candidates, targets):
        return next(
            (
                c["labels"]
                for c in candidates
                if all(share(c["candidate"][t]) >= summary["target"] - 1e-12 for t in targets) and all(share(v) >= share(exp["baseline"][s]) - config.tolerance - 1e-12 for s, v in c["candidate"].items() if s not in targets)
            ),
            None,
        )

    for name, arm in summary["arms"].items():
        candidates = exp["arms"][name]["candidates"]
        assert arm["labels_to_target"] == reached(candidates, suites), (name, arm)
        for case, entry in summary["cases"].items():
            assert entry["labels_to_target_by_arm"][name] == reached(candidates, [entry["suite"]]), (name, case, entry)
            if name == "triggered":
                assert entry["labels_to_target"] == entry["labels_to_target_by_arm"]["triggered"]
                assert entry["final_pass"] == share(candidates[-1]["candidate"][entry["suite"]])
        last = candidates[-1]
        assert arm["final_candidate_pass"] == {s: v["passed"] / v["cases"] for s, v in last["candidate"].items()}
        assert arm["final_production_pass"] == {s: v["passed"] / v["cases"] for s, v in last["production"].items()}
        if not last["accepted"] and len(candidates) == 1:  # a refused first candidate leaves PRODUCTION at the baseline
            assert last["production"] == exp["baseline"]
    assert summary["arms"]["seed-only"]["label_cap"] == seed_labels

    # triggers and the base rate, recomputed from the recorded counts
    random_pool = [t for t in exp["triggers"] if t["source"] == "random"]
    k, n = sum(t["true_positive"] for t in random_pool), sum(t["labelled"] for t in random_pool)
    assert n > 0 and summary["base_rate"] == k / n
    assert summary["base_rate_ci95"] == list(wilson(k, n))
    by_id = {t["id"]: t for t in summary["triggers"]}
    assert set(by_id) == {t["trigger_id"] for t in exp["triggers"]}
    for t in exp["triggers"]:
        s = by_id[t["trigger_id"]]
        assert s["labelled_uploads"] == t["labelled"] <= t["uploads"] <= t["fires"] and s["true_positive"] == t["true_positive"]
        assert s["yield"] == (t["true_positive"] / t["labelled"] if t["labelled"] else None)
        if s["yield"] is not None and k:
            assert abs(s["yield_vs_base_rate"] - s["yield"] / (k / n)) < 1e-9
    assert sum(t["labelled"] for t in exp["triggers"] if t["source"] == "triggered") > 0
    # one detector and one detector trigger per case; each trigger's uploads counted per case
    assert {d["case"] for d in exp["detectors"]} == {"occluded", "handheld"}
    published = {d["case"] for d in exp["detectors"] if d["iteration"] == 0 and d["status"] == "SUCCEEDED"}
    assert {"detector-stop-" + exp["suffix"] if c == "occluded" else "detector-handheld-" + exp["suffix"] for c in published} <= set(by_id)
    for t in exp["triggers"]:
        assert all(0 <= k_case <= t["true_positive"] for k_case in t["by_case"].values()) and sum(t["by_case"].values()) >= t["true_positive"]
        for case, entry in summary["per_seed"][0]["cases"].items():
            assert entry["triggers"][t["trigger_id"]]["true_positive"] == t["by_case"].get(case, 0)
    assert all(f["upload_errors"] == 0 for f in exp["fleet"])
    assert exp["labels_total"] >= sum(t["labelled"] for t in exp["triggers"]) + seed_labels  # uploads and the seed set (suite cases too)

    # the report leads with the answer and shows the summary's figures
    md = path.read_text()
    assert md.index("## The answer") < md.index("### Cases (seed 0)") < md.index("### Yield per trigger") < md.index("### Every candidate and the gate")
    for name, arm in summary["arms"].items():
        needed = arm["labels_to_target"]
        assert f"| {name} | {needed if needed is not None else '> ' + str(exp['arms'][name]['candidates'][-1]['labels'])} |" in md
    first_case = exp["arms"]["triggered"]["candidates"][0]["candidate"][suites[0]]
    lo, hi = wilson(first_case["passed"], first_case["cases"])
    assert f"{report.pct(first_case['passed'] / first_case['cases'])} [{report.pct(lo)}, {report.pct(hi)}] ({first_case['passed']}/{first_case['cases']})" in md
    for png in ("labels_to_target.png", "yield.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
