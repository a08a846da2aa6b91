"""A task declared while the engine runs (`caution_lights`: parked vehicles with their hazard or
police lights on) goes through its workflow on the real services (label store, trigger
evaluator, trainer, gateway, a simulated fleet, Kafka, S3): seed set labelled from its queue, a
trigger detector trained and beamed to the cars, scored in shadow mode, backtested, activated;
its uploads labelled; held-out positives promoted into its suite; the fleet's model retrained
with the new head through the gate. No product code knows the task."""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from types import SimpleNamespace

import numpy as np

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.models.v1 import trainer_pb2 as T
from longtail.tasks import parse
from longtail.triggers.v1 import triggers_pb2 as S

from demo.experiment import label_queue, register_frames
from demo.stack import Stack
from task_workflow.engine import GrpcEngine
from task_workflow.settings import WorkflowSettings
from task_workflow.state import StateStore, Step
from task_workflow.workflow import Outcome, Workflow

WORLD_SEED = 7
DECLARATION = """
tasks:
  - name: TASK
    prototype: detection
    classes: [vehicle]
    attributes: {lights: [off, hazard, police]}
    object_size_m: 1.6
    description: The vehicle ahead has its hazard or police lights on.
    suite: {name: TASK.regressions, predicate: "any(d.cls == vehicle and d.attr.lights != off and d.conf >= 0.5)"}
    workflow: {seed_labels: 60, detector_epochs: 8, shadow_frames: 300, labels_per_iteration: 10, suite_cases: 8, holdout_every: 3,
               max_iterations: 1, epochs: 2, replay_samples: 200, upload_budget: 1000, fleet_cars: 6, budget_horizon_h: 1,
               max_uploads_per_car_hour: 3600, model: MODEL}
"""


def frames_behind_vehicles(world, n: int, seed: int):
    """Lake samples: frames 6-16 m behind parked vehicles (with and without caution lights) and of empty road."""
    from longtail.synthetic.render import render
    from longtail.synthetic.world import VEHICLE

    rng = np.random.default_rng(seed)
    vehicles = world.objects_of(VEHICLE)
    on = [v for v in vehicles if v.attributes["lights"] != "off"]
    images, truths = [], []
    for i in range(n):
        v = on[int(rng.integers(len(on)))] if i % 2 == 0 else vehicles[int(rng.integers(len(vehicles)))]
        back = rng.uniform(6.0, 16.0) * (1 if i % 5 else 6)
        h = v.approach_heading
        img, gt = render(world, C.Pose(x=v.anchor_x - math.cos(h) * back, y=v.anchor_y - math.sin(h) * back, heading=h), noise_seed=seed * 1000 + i)
        images.append(img)
        truths.append(gt)
    return SimpleNamespace(images=images, truths=truths)


def test_a_task_declared_while_the_engine_runs_gets_a_detector_trigger_uploads_a_suite_and_a_trained_head(kafka, s3, tmp_path):
    from longtail.model import torchscript
    from longtail.synthetic.world import World, WorldConfig

    from fleet_sim.bootstrap import train_bootstrap_model
    from fleet_sim.fleet import SimConfig, SimulatedFleet
    from map_vision.seed import simulator_map, write_seed_file

    run_id = uuid.uuid4().hex[:6]
    line = f"wf-{run_id}"
    stack = Stack(f"wf-{run_id}", say=print, manage_infra=False, triton=False, prometheus=False)
    stack.state.mkdir(parents=True, exist_ok=True)
    stack.configure(fleet_model=line, seed_map=write_seed_file(simulator_map(world_seed=WORLD_SEED), stack.state / "seed-map.json"))
    try:
        for name in ("label-store", "trigger-evaluator", "trainer"):
            stack.start(name)
        stack.clients()
        model = train_bootstrap_model(seed=3)
        model.eval()
        stack.trainer.ImportModel(T.ImportModelRequest(model_name=line, weights=torchscript.to_bytes(model), role=C.MODEL_ROLE_PRODUCTION, reason="baseline"), metadata=stack.auth, timeout=60)
        stack.start("gateway", GATEWAY_FLEET_MODEL=line)
        world = World(WorldConfig(vehicle_rate=0.4, hazard_rate=0.3, police_rate=0.1), seed=WORLD_SEED)
        register_frames(stack, frames_behind_vehicles(world, 70, seed=1), f"lake-{run_id}")

        task = f"caution_lights_{run_id}"  # the bucket keeps the workflow states of earlier runs
        declared = parse(DECLARATION.replace("MODEL", line).replace("TASK", task))[0]
        engine = GrpcEngine(stack.labels, stack.trainer, stack.catalog, stack.auth, run_timeout_s=900)
        assert engine.declare(declared) == "created" and engine.declare(declared) == "unchanged"  # apply is idempotent
        states = StateStore(stack.objects)
        wf = Workflow(declared, engine, states, say=print)

        def truth(sample_id):
            try:
                return json.loads(stack.objects.get(f"groundtruth/{sample_id}.json"))
            except Exception:  # noqa: BLE001 - not a simulator sample
                return None

        drives = [0]

        def drive(seconds: float = 30.0):
            drives[0] += 1
            sim = SimConfig(cars=6, duration_s=seconds, fps=10.0, seed=9000 + drives[0], vehicle_prefix=f"wf-{run_id}-{drives[0]}", ring_frames=120, request_grace_s=3.0, tls_dir=str(stack.pki))
            fleet = SimulatedFleet(sim, world, model, store=stack.objects, gateway_address=stack.processes["gateway"].address, token_secret=stack.fleet_secret)
            return asyncio.run(fleet.run())

        # seed set: requested from the task's queue (every registered sample joined it), labelled there
        assert wf.run() is Outcome.WAITING and wf.state.step == Step.SEED_SET.value
        assert label_queue(stack, truth, 0, task_name=task) >= 60
        # detector trained and beamed; the fleet scores frames with it in shadow mode before the backtest
        assert wf.run() is Outcome.WAITING and wf.state.step == Step.TRIGGER.value, wf.state.history
        assert wf.state.detector_version >= 1
        deadline = time.monotonic() + 300
        while wf.state.step == Step.TRIGGER.value:
            drive()
            time.sleep(2.0)
            wf.run()
            assert time.monotonic() < deadline, wf.state.waiting_for
        # the simulated clock runs at 10 fps: thousands of fires per car-hour, far over 1,000 uploads an hour on 6 cars
        assert wf.state.step == Step.BLOCKED.value and wf.state.blocked_step == Step.TRIGGER.value, wf.state.history
        assert "not activated" in wf.state.blocked_reason and "over its upload budget of 1,000" in wf.state.blocked_reason
        # the operator raises the budget (tasks.yaml) and resumes: the same backtest now fits
        wf = Workflow(declared, engine, states, WorkflowSettings.from_dict({**declared.workflow, "upload_budget": 10_000_000}), say=print)
        wf.resume()
        assert wf.run() is Outcome.WAITING
        assert wf.state.step == Step.SOURCING.value and wf.state.trigger_active, wf.state.history
        trigger = stack.catalog.GetTrigger(S.GetTriggerRequest(trigger_id=wf.state.trigger_id), timeout=10)
        assert trigger.trigger.spec.expression.startswith(f'score("{task}_detector")')
        # the fleet uploads what the trigger fires on; the uploads are labelled; then suite and training
        deadline = time.monotonic() + 600
        while wf.state.step == Step.SOURCING.value:
            report = drive()
            time.sleep(5.0)  # the label store registers uploads from the snapshot events
            label_queue(stack, truth, 0, task_name=task)
            outcome = wf.run()
            assert time.monotonic() < deadline, (wf.state.waiting_for, report.fires, report.uploads)
        assert outcome in (Outcome.CERTIFIED, Outcome.BLOCKED), wf.state.history
        state = states.load(task)
        assert state.step in ("certified", "blocked") and state.iteration == 1
        if state.step == "blocked":
            assert "not certified after 1 iterations" in state.blocked_reason, state.blocked_reason
        suite = stack.labels.GetSuite(L.GetSuiteRequest(name=f"{task}.regressions"), timeout=10).suite
        assert 1 <= suite.cases_count <= 8 and suite.cases_count == state.suite_cases
        runs = stack.trainer.ListRuns(T.ListRunsRequest(), timeout=10).runs
        multitask = [r for r in runs if r.spec.model_name == line and r.spec.kind != T.RUN_KIND_TRIGGER_DETECTOR]
        assert multitask and task in multitask[-1].spec.tasks
        run = multitask[-1]
        assert run.status in (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED), run.error
        hp = run.spec.hyperparameters
        assert hp["train_heads"] == task and hp["branch_blocks"] == 2, hp  # the task's own branch, trained alone
        assert not any(d.startswith("replay:") for d in run.datasets_used), list(run.datasets_used)  # nothing else moves: no rehearsal
        assert all(not g.regressed_case_ids for g in run.gate_report.suites), run.gate_report  # no case of any suite lost
        assert f"{task}.regressions" in {g.suite for g in run.gate_report.suites}  # the gate measured the new suite
        version = stack.trainer.GetModel(T.GetModelRequest(model=C.ModelRef(name=line, version=run.model.version)), timeout=10).model
        assert task in version.tasks and "stop_sign" in version.tasks  # the new head beside the others

        # the same through the command line: status, apply (a second task, a workflow started), resume
        from typer.testing import CliRunner

        from longtail_cli.app import app

        env = {**stack.cli_env(), "COLUMNS": "250"}
        cli = CliRunner()
        shown = cli.invoke(app, ["tasks", "status", task], env=env)
        assert shown.exit_code == 0 and state.step in shown.output and f"{task}.regressions: {state.suite_cases} cases" in shown.output, shown.output
        second = f"police_{run_id}"
        path = tmp_path / "tasks.yaml"
        path.write_text(DECLARATION.replace("MODEL", line).replace("TASK", second))
        applied = cli.invoke(app, ["tasks", "apply", str(path)], env=env)
        assert applied.exit_code == 0 and "created" in applied.output and "started" in applied.output, applied.output
        again = cli.invoke(app, ["tasks", "apply", str(path)], env=env)
        assert again.exit_code == 0 and "unchanged" in again.output, again.output
        listed = cli.invoke(app, ["tasks", "status"], env=env)
        assert second in listed.output and task in listed.output, listed.output
        assert states.load(second).step == Step.SEED_SET.value
        if state.step == "blocked":
            resumed = cli.invoke(app, ["tasks", "resume", task, "--file", str(tmp_path / "first.yaml")], env=env)
            assert resumed.exit_code == 2 and "cannot read the task declarations" in resumed.output  # a clear error, nothing changed
            (tmp_path / "first.yaml").write_text(DECLARATION.replace("MODEL", line).replace("TASK", task))
            resumed = cli.invoke(app, ["tasks", "resume", task, "--file", str(tmp_path / "first.yaml")], env=env)
            assert resumed.exit_code == 0 and "back at train" in resumed.output, resumed.output
            assert states.load(task).step == Step.TRAIN.value
    finally:
        stack.stop(keep_infra=True)
