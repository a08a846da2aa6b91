"""The dashboards against a real scrape: a short `longtail demo` runs every service as its own
process, the local Prometheus (`longtail infra up prometheus`) scrapes them and Triton, and every
PromQL query of every dashboard in the repository returns data; the alert rules are loaded."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

from google.protobuf import struct_pb2

from longtail.models.v1 import trainer_pb2 as T

from demo import loop

CHARTS = Path(__file__).resolve().parents[2] / "charts"
# Series only a GPU produces: this machine (and CI) has none.
GPU_ONLY = re.compile(r"\bnv_gpu_")


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL) for every target of every dashboard, with the
    dashboard variables set the way Grafana would for the local scrape."""
    out = []
    for path in sorted(CHARTS.glob("*/dashboards/*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$namespace", "local").replace("$task", ".*")
                out.append((f"{path.parent.parent.name}/{path.name}", panel["title"], expr))
    return out


def query(base: str, path: str, **params) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def test_every_dashboard_query_returns_data_from_a_demo_run(kafka, s3, triton, prometheus, tmp_path):
    config = loop.DemoConfig(cars=3, max_iterations=1, budget=12, duration_s=30.0, fps=10.0, suite_cases=6, epochs=1, seed_examples=4, random_per_car=4, out=tmp_path / "demo", manage_infra=False, keep_running=True, cases=["occluded"])
    said: list[str] = []
    _result, _path, engine = loop.run(config, say=said.append)
    try:
        # A tiny demo may skip training (no fleet sample in a train split), so train one version of
        # a fresh model line: with no production version to regress against, the gate publishes it
        # (weights written, suites recorded, per-task metrics exported) whatever the demo did.
        hp = struct_pb2.Struct()
        hp.update({"fallback_samples": 64})
        spec = T.RunSpec(model_name=f"obs-{engine.run_id}", seed=1, epochs=1, hyperparameters=hp)
        trainer = engine.stack.trainer
        run_id = trainer.StartRun(T.StartRunRequest(spec=spec), metadata=engine.stack.auth, timeout=10).run.run_id
        deadline = time.monotonic() + 600
        while (run := trainer.GetRun(T.GetRunRequest(run_id=run_id), timeout=10).run).status not in (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run.status == T.RUN_STATUS_SUCCEEDED, (T.RunStatus.Name(run.status), run.error, run.gate_report)

        # every service process is a scrape target, and up
        wanted = {"gateway", "trigger-evaluator", "label-store", "inference", "trainer", "map-vision", "triton"}
        deadline = time.monotonic() + 30
        while True:
            targets = query(prometheus, "/api/v1/targets")["activeTargets"]
            up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
            if wanted <= up or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert wanted <= up, f"not scraped (or down): {sorted(wanted - up)}; targets: {[(t['labels'], t['health'], t.get('lastError')) for t in targets]}"
        time.sleep(5)  # two more scrapes: rate() over the final counters

        queries = dashboard_queries()
        assert len(queries) > 100
        empty = []
        for dashboard, title, expr in queries:
            if GPU_ONLY.search(expr):
                continue
            if not query(prometheus, "/api/v1/query", query=expr)["result"]:
                empty.append(f"{dashboard} / {title}: {expr}")
        assert not empty, f"{len(empty)} of {len(queries)} dashboard queries returned no data:\n" + "\n".join(empty)

        # the alert rules the chart ships are loaded by the local Prometheus too, and evaluate cleanly
        groups = query(prometheus, "/api/v1/rules")["groups"]
        rules = {r["name"]: r for g in groups for r in g["rules"]}
        assert {"LongtailTriggerYieldLow", "LongtailConsumerLagGrowing", "LongtailModelRefused"} <= set(rules)
        assert all(r["health"] in ("ok", "unknown") for r in rules.values()), {n: r.get("lastError") for n, r in rules.items() if r["health"] == "err"}
    finally:
        engine.stop()
