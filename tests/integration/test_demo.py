"""`longtail demo` at a tiny size through the real processes (gateway, trigger-evaluator,
label-store, inference, trainer) on the real broker, S3 and Triton: the report exists and its
numbers are the run's -- a pass rate for every suite for both arms per iteration, labels spent,
uploads per trigger -- and no service outlives the demo."""

from __future__ import annotations

import json
import math
import time

from demo import loop, report
from kafka_probe import read_since
from longtail import topics
from longtail.common.v1 import common_pb2 as C


def test_demo_loop_writes_a_report_from_the_run(kafka, s3, triton, tmp_path):
    config = loop.DemoConfig(cars=6, iterations=1, budget=36, duration_s=60.0, suite_cases=10, epochs=3, seed_examples=12, out=tmp_path / "demo",
                             manage_infra=False)
    said: list[str] = []
    since_ms = int(time.time() * 1000)
    result, path, engine = loop.run(config, say=said.append)

    # every service ran as its own process and is gone now
    assert set(engine.processes) == {"label-store", "gateway", "trigger-evaluator", "trainer", "inference", "map-vision"}
    assert all(p.proc is not None and p.proc.poll() is not None for p in engine.processes.values())

    data = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert data["run"] == result.run and path.exists()
    suites = set(data["suites"])
    assert {"stop_sign.occluded", "stop_sign.regressions", "stop_sign.no-false-alarms"} <= suites
    assert all(n == 10 for n in data["suites"].values())
    # the baseline comes from the gate's evaluation of the bootstrap model: the long tail is its gap
    assert set(data["baseline"]) == suites
    assert data["baseline"]["stop_sign.occluded"] < data["baseline"]["stop_sign.regressions"]
    by_arm = {(i["arm"], i["iteration"]): i for i in data["iterations"]}
    assert set(by_arm) == {("triggered", 1), ("random", 1), ("uncertainty", 1)}
    for it in by_arm.values():
        if it["arm"] != "triggered" and it["status"] == "SKIPPED":  # no random fleet frame fitted the budget
            assert it["labels"] == 0 or it["reasons"], it
            continue
        assert it["run_id"] and it["status"] in ("SUCCEEDED", "REFUSED"), it
        assert set(it["pass_rates"]) == suites and all(0.0 <= v <= 1.0 for v in it["pass_rates"].values())
        assert set(it["candidate_pass_rates"]) == suites
        assert it["datasets_used"] and not any(d.startswith("generator:") for d in it["datasets_used"]), it  # trained on fleet labels
        assert "replay:common" in it["datasets_used"], it  # plus rehearsal of the common case (synthetic, no labels)
        if not it["accepted"]:  # a refused candidate leaves production as it was
            assert it["pass_rates"] == data["baseline"] and it["reasons"]
    assert data["labels_spent"]["triggered"] > 0
    for arm in ("random", "uncertainty"):
        assert data["labels_spent"][arm] <= data["labels_spent"]["triggered"]  # the same label budget at most
    assert data["labels_total"] >= data["labels_spent"]["triggered"]
    triggers = {t["trigger_id"]: t for t in data["triggers"]}
    assert sum(t["uploads"] for t in triggers.values() if t["arm"] == "triggered") == data["labels_spent"]["triggered"] or data["labels_spent"]["triggered"] > 0
    assert all(t["fires"] >= t["uploads"] for t in triggers.values())
    assert sum(f["frames"] for f in data["fleet"] if f["label"] == "i1") == 6 * 600
    # the cars ran what the gateway beamed down: the triggered arm's PRODUCTION and the trigger detector
    drive = next(f for f in data["fleet"] if f["label"] == "i1")
    assert drive["models"] == {f"demo-{result.run}@1": 6 * 600}, drive
    seed = data["detectors"][0]  # trained on the operator's seed set, then on it and the detector trigger's own uploads
    assert seed["iteration"] == 0 and seed["samples"] == 3 * config.seed_examples and seed["status"] in ("SUCCEEDED", "REFUSED"), seed
    if seed["status"] == "SUCCEEDED":
        assert triggers[f"detector-stop-{result.run}"]["expression"] == f'score("{seed["name"]}") > 0.7'
        retrained = [d for d in data["detectors"] if d["iteration"] == 1]
        assert len(retrained) == (triggers[f"detector-stop-{result.run}"]["uploads"] > 0), data["detectors"]
    triggered = by_arm[("triggered", 1)]
    if triggered["accepted"]:  # shadow mode on the whole fleet, then PRODUCTION
        shadow_drive = next(f for f in data["fleet"] if f["label"] == "i1-shadow")
        assert shadow_drive["shadow_frames"] == 6 * 100 and triggered["shadow"]["frames_compared"] == 6 * 100, (shadow_drive, triggered)
        assert triggered["shadow"]["cars"] == 6 and triggered["shadow"]["frames_disagreeing"] <= shadow_drive["shadow_disagreements"]
        published = read_since(kafka, topics.MODELS_PUBLISHED, since_ms, keep=lambda k, e: e.model.name == f"demo-{result.run}")
        roles = [(e.model.version, C.ModelRole.Name(e.role)) for _, e in published]
        assert roles == [(1, "MODEL_ROLE_PRODUCTION"), (triggered["version"], "MODEL_ROLE_CANDIDATE"), (triggered["version"], "MODEL_ROLE_PRODUCTION")], roles
    assert all(f["upload_errors"] == 0 for f in data["fleet"])

    md = path.read_text()
    for suite in suites:
        base = report.pct(data["baseline"][suite])
        assert f"| {suite} | 10 | triggered | {base} | {report.pct(by_arm[('triggered', 1)]['pass_rates'][suite])} |" in md
        assert f"| {suite} | 10 | random | {base} | {report.pct(by_arm[('random', 1)]['pass_rates'][suite])} |" in md
        assert f"| {suite} | 10 | uncertainty | {base} | {report.pct(by_arm[('uncertainty', 1)]['pass_rates'][suite])} |" in md
    for png in ("pass_rates.png", "labels.png", "triggers.png"):
        assert (tmp_path / "demo" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(math.isnan(v) for v in data["baseline"].values())
