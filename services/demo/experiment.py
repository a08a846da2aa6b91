"""One seed's experiment on a running stack: every arm starts from the same baseline model, trains on
the same seed set plus what it picks from the fleet (the same label budget per iteration), with the
same recipe (fine-tune its PRODUCTION on all its labels, rehearsing the common case), is measured
on the same held-out suites, and iterates until its candidate reaches the target on the case's
suite or it has spent its label cap (`cap_factor` x what the triggered arm needed).

  baseline v1 for every arm's model line -> seed set labelled -> trigger detector trained and beamed
  -> triggers created, backtested, activated -> per iteration: drive (while the triggered arm is
  still learning, or the random pool is short) -> label -> each active arm picks, trains, the gate
  decides -> the triggered arm's accepted candidate runs in shadow mode, then becomes PRODUCTION.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

import grpc
import numpy as np

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.models.v1 import trainer_pb2 as T
from longtail.synthetic.world import WorldConfig
from longtail.triggers.v1 import triggers_pb2 as S

from demo.accounting import ArmLedger, Candidate, Experiment, SuiteScore, TriggerStats
from demo.arms import Arm, ArmContext, PoolSample, budget_schedule
from demo.new_task import WORLD, NewTask
from demo.scenario import OCCLUDED, LongTailCase, Scenario, trigger_plans
from demo.stack import Stack

ERROR_RATE = 0.02  # simulated labellers' error rate
MAX_DATASET_SAMPLES = 10_000  # the label store's limit on SampleFilter.sample_ids

_drive_loop: asyncio.AbstractEventLoop | None = None


def drive_loop() -> asyncio.AbstractEventLoop:
    """One event loop for every drive of the process: grpc.aio binds its completion-queue poller to
    each loop it served and keeps posting to it, so a loop closed after a drive (asyncio.run) fills
    the output with "Event loop is closed" tracebacks."""
    global _drive_loop
    if _drive_loop is None or _drive_loop.is_closed():
        _drive_loop = asyncio.new_event_loop()
    return _drive_loop


@dataclass
class Settings:
    """The experiment's knobs (DemoConfig passes them through)."""

    cars: int
    duration_s: float
    budget: int
    growth: float
    target: float
    cap_factor: float
    max_iterations: int
    per_car_uploads: int
    random_per_car: int
    shadow_s: float
    replay_samples: int
    epochs: int
    fps: float = 5.0
    tolerance: float = 0.02
    max_extra_drives: int = 4
    new_task: str = ""  # a task declared in the middle of the run (demo.new_task.DECLARATIONS)
    new_task_at: int = 2  # ... at the start of this iteration


class ExperimentRun:
    def __init__(self, stack: Stack, settings: Settings, scenario: Scenario, arms: list[Arm], seed: int, model, suites: dict[str, int], say: Callable[[str], None], run_id: str) -> None:
        self.stack = stack
        self.s = settings
        self.scenario = scenario
        self.arms = {a.name: a for a in arms}
        self.seed = seed
        self.model = model  # the bootstrap model: baseline of every arm, and what the cars start with
        self.say = say
        self.suffix = f"{run_id}-s{seed}"
        self.lines = {name: f"demo-{self.suffix}-{name}" for name in self.arms}
        self.result = Experiment(seed=seed, suffix=self.suffix, target=settings.target, cases={c.name: c.suite for c in scenario.cases}, suites=dict(suites))
        self.result.arms = {name: ArmLedger(name, tuple(scenario.case_suites), settings.target, settings.tolerance) for name in self.arms}
        self.triggers: dict[str, TriggerStats] = {}
        self.pool: dict[str, list[PoolSample]] = {"triggered": [], "random": []}
        self.counted: set[str] = set()
        self.uploaded: set[str] = set()  # snapshot ids the gateway acknowledged to the cars (our triggers)
        self.truth: dict[str, dict] = {}
        self.images: dict[str, np.ndarray] = {}
        self.seed_ids: list[str] = []
        # One trigger detector per case, beamed to the cars under its bare name (the occluded one keeps its old name).
        self.detectors = {c.name: (f"occluded_stop_{self.suffix}" if c is OCCLUDED else f"{c.name}_{self.suffix}").replace("-", "_") for c in scenario.cases}
        self.published: set[str] = set()  # cases whose detector is on the cars
        self.production: dict[str, dict[str, SuiteScore]] = {}
        self.drives = 0
        self.fleet_world = WorldConfig(**WORLD.get(settings.new_task, {}))  # the new task's phenomenon is in the world from the start
        self.new_task = NewTask(stack, settings.new_task, f"demo-{self.suffix}-{settings.new_task.replace('_', '-')}", model, seed, say) if settings.new_task else None

    @property
    def triggered_line(self) -> str:
        return self.lines["triggered"]

    # ------------------------------------------------------------------ the whole experiment
    def run(self) -> Experiment:
        started = time.perf_counter()
        try:
            self.publish_baseline()
            self.stack.start("gateway", GATEWAY_FLEET_MODEL=self.triggered_line)
            if self.stack.triton:  # inference serves once a PRODUCTION version of its line exists
                self.stack.start("inference", INFERENCE_MODEL_NAME=self.triggered_line)
            self.label_seed_set()
            for case in self.scenario.cases:
                if self.train_detector(case, 0, self.seed_ids, f"{len(self.seed_ids)} labelled seed frames"):
                    self.published.add(case.name)
                else:
                    self.result.notes.append(f"the {case.name} trigger detector was not published ({self.result.detectors[-1]['gate']}): no detector trigger for it")
            self.create_triggers()
            since_ms = int(time.time() * 1000) - 1000
            self.drive(0, min(10.0, self.s.duration_s), "backtest-drive")  # recorded telemetry, no trigger active
            time.sleep(1.0)
            self.backtest_and_activate(since_ms)
            time.sleep(1.5)  # the gateway's catalog view follows the topic
            for iteration in range(1, self.s.max_iterations + 1):
                if self.new_task is not None and iteration == self.s.new_task_at:
                    self.new_task.declare(iteration)
                active = [a for a in self.arms.values() if not self.result.arms[a.name].done() and (a.uses_fleet or iteration == 1)]
                if not active and not self.new_task_pending(iteration):
                    break
                self.say(f"[bold]seed {self.seed}, iteration {iteration}[/]: arms {', '.join(a.name for a in active) or 'none'}" + (f"; the new task {self.s.new_task}" if self.new_task_pending(iteration) else ""))
                self.iterate(iteration, active)
            triggered = self.result.arms.get("triggered")
            if triggered is not None and triggered.label_cap is None and triggered.candidates:
                self.set_caps(triggered)  # it never reached the target: the caps it implies, for the report
            for name, ledger in self.result.arms.items():
                ledger.stopped = ledger.stopped or (
                    "reached the target" if ledger.labels_to_target is not None else "label cap" if ledger.done() else "no fleet data" if not self.arms[name].uses_fleet else f"--max-iterations {self.s.max_iterations}"
                )
        finally:
            self.retire_triggers()
            if self.new_task is not None:
                self.new_task.retire()
                self.result.new_task = asdict(self.new_task.result) if self.new_task.result is not None else None
            self.result.picked_by_trigger = {t: len(ids) for t, ids in getattr(self.arms.get("triggered"), "picked_from", {}).items()}
            self.result.wall_seconds = time.perf_counter() - started
        return self.result

    def iterate(self, iteration: int, active: list[Arm]) -> None:
        budget = budget_schedule(self.s.budget, self.s.growth, iteration)
        wants = {a.name: self.wanted(a, budget) for a in active}
        triggered_learning = any(a.name == "triggered" for a in active)
        for_new_task = self.new_task_pending(iteration)
        extra = 0
        while triggered_learning or for_new_task or self.random_short(active, wants):
            self.drive(iteration, self.s.duration_s, f"i{iteration}" + (f"-extra{extra}" if extra else ""))
            self.collect()
            triggered_learning = for_new_task = False
            if not self.random_short(active, wants):
                break
            extra += 1
            if extra > self.s.max_extra_drives:
                self.result.notes.append(f"seed {self.seed}, iteration {iteration}: the random pool stayed short of what the baselines may pick")
                break
        # The ground truth stands in for the labels an arm paid for (the simulated labellers' error rate is 2%).
        context = ArmContext(seed=self.seed, priorities={t.trigger_id: t.priority for t in self.triggers.values()}, entropy=self.entropies, positive=self.shows_unmet_case())
        runs = {}
        for arm in active:
            picked = arm.pick(self.pool[arm.source] if arm.uses_fleet else [], wants[arm.name], context)
            ds = self.dataset(arm, iteration)
            fleet = len(arm.picked)
            positives = sum(self.is_positive(sid) for sid in arm.picked)
            c = Candidate(iteration, arm.name, len(self.seed_ids) + fleet, fleet, f"{ds.name}@{ds.version}", positives=positives)
            self.say(f"[green]dataset[/] {arm.name} i{iteration}: +{len(picked)} fleet labels -> {c.labels} labels ({len(self.seed_ids)} seed set, {positives} fleet frames showing the case)")
            runs[arm.name] = (self.start_run(arm.name, iteration, ds), c)
        if "triggered" in runs and self.published:
            self.retrain_detectors(iteration)  # queued behind the arms' runs; beamed before the next drive
        for name, (run_id, c) in runs.items():
            self.record(name, self.wait_run(run_id, f"{name} i{iteration}"), c)
        triggered = self.result.arms.get("triggered")
        if triggered is not None and triggered.done() and not any(arm.label_cap for n, arm in self.result.arms.items() if n != "triggered"):
            self.set_caps(triggered)
        if self.new_task is not None and self.new_task.declared:
            self.new_task.step(iteration)  # after the arms' runs: the trainer serves one run at a time

    def new_task_pending(self, iteration: int) -> bool:
        """A new task is still to be declared, or declared and not certified nor blocked."""
        if self.new_task is None:
            return False
        return iteration < self.s.new_task_at or self.new_task.pending

    def wanted(self, arm: Arm, budget: int) -> int:
        ledger = self.result.arms[arm.name]
        if not arm.uses_fleet:
            return 0
        cap = ledger.label_cap
        if cap is None and arm.name != "triggered" and "triggered" in self.arms:
            # Until the triggered arm has finished, no baseline runs ahead of its possible cap.
            cap = int(self.s.cap_factor * (len(self.seed_ids) + len(self.arms["triggered"].picked) + budget))
        if cap is None:
            return budget
        if cap > MAX_DATASET_SAMPLES:
            self.note_once(f"the label cap of {cap} is limited to {MAX_DATASET_SAMPLES} labels, the most samples a dataset version may name")
            cap = MAX_DATASET_SAMPLES
        return max(0, min(budget, cap - len(self.seed_ids) - len(arm.picked)))

    def note_once(self, note: str) -> None:
        if note not in self.result.notes:
            self.result.notes.append(note)

    def random_short(self, active: list[Arm], wants: dict[str, int]) -> bool:
        need = max((len(a.picked) + wants[a.name] for a in active if a.source == "random"), default=0)
        return len(self.pool["random"]) < need

    def set_caps(self, triggered: ArmLedger) -> None:
        needed = triggered.labels_to_target
        basis = needed if needed is not None else triggered.labels_spent
        cap = int(math.ceil(self.s.cap_factor * basis))
        triggered.label_cap = basis
        for name, ledger in self.result.arms.items():
            if name != "triggered" and self.arms[name].uses_fleet:
                ledger.label_cap = cap
        how = f"reached {self.s.target:.0%} with {needed} labels" if needed is not None else f"did not reach {self.s.target:.0%} ({basis} labels spent)"
        # Its triggers keep running while the fleet drives for the baselines: more events for their yield.
        self.say(f"[magenta]operator[/] the triggered arm {how}: the baselines may spend up to {cap} labels ({self.s.cap_factor:g}x)")

    # ------------------------------------------------------------------ baseline and seed set
    def publish_baseline(self) -> None:
        """The bootstrap model becomes v1 PRODUCTION of every arm's line, through the trainer's API."""
        from longtail.model import torchscript

        weights = torchscript.to_bytes(self.model)
        for name in self.lines.values():
            mv = self.stack.trainer.ImportModel(
                T.ImportModelRequest(model_name=name, weights=weights, role=C.MODEL_ROLE_PRODUCTION, reason="bootstrap model (common cases only): every arm's baseline"), metadata=self.stack.auth, timeout=60
            ).model
            if mv.model.version != 1 or mv.state != T.MODEL_STATE_PRODUCTION:
                raise RuntimeError(f"{name}: the import gave version {mv.model.version} in state {T.ModelState.Name(mv.state)}, not v1 PRODUCTION")
        self.say(f"[blue]baseline[/] the bootstrap model is v1 PRODUCTION of {', '.join(self.lines.values())}")

    @property
    def seed_trigger(self) -> str:
        """Provenance of the operator's seed set (every arm trains on it)."""
        return f"seed-{self.suffix}"

    def label_seed_set(self) -> None:
        vehicle = f"seed-{self.suffix}"
        shown = []
        for case in self.scenario.cases:
            close_ups = self.scenario.seed_close_ups(case, self.seed)
            self.seed_ids += [sid for sid in register_frames(self.stack, close_ups, vehicle, self.seed_trigger) if sid not in self.seed_ids]
            shown.append(f"{len(close_ups.images)} close-ups of {self.scenario.seed_signs} {case.description}")
        negatives = self.scenario.fleet_like_negatives(self.seed)
        self.seed_ids += [sid for sid in register_frames(self.stack, negatives, vehicle, self.seed_trigger) if sid not in self.seed_ids]
        self.result.labels_total += label_queue(self.stack, self.ground_truth, self.seed)
        self.result.seed_labels = len(self.seed_ids)
        self.say(f"[magenta]operator[/] seed set: {'; '.join(shown)}; {len(negatives.images)} fleet-like frames; labelled")

    # ------------------------------------------------------------------ trigger detector
    def train_detector(self, case: LongTailCase, iteration: int, sample_ids: list[str], what: str) -> bool:
        """`case`'s detector run on the labelled `sample_ids` (its positive predicate makes the
        other cases' frames its negatives); True when published (beamed to the cars)."""
        detector = self.detectors[case.name]
        created = self.stack.labels.CreateDataset(
            L.CreateDatasetRequest(
                name=f"demo-{self.suffix}-detector" + ("" if case is OCCLUDED else f"-{case.name.replace('_', '-')}"),
                tasks=[case.task],
                filter=L.SampleFilter(sample_ids=sample_ids),
                split=L.SplitSpec(val_fraction=0.25),
                description=f"{case.name} detector, iteration {iteration}: {what}",
            ),
            metadata=self.stack.auth,
            timeout=120,
        )
        ds = created.dataset
        if created.already_existed and any(d["name"] == detector for d in self.result.detectors):
            self.say(f"[blue]detector[/] no new labelled upload since {ds.name}@{ds.version}, not retrained")
            return False
        spec = T.RunSpec(
            kind=T.RUN_KIND_TRIGGER_DETECTOR,
            model_name=detector,
            detector_name=detector,
            tasks=[case.task],
            positive_predicate=case.label_predicate,
            seed=self.seed * 100 + iteration,
            epochs=16,
            datasets=[C.DatasetRef(name=ds.name, version=ds.version)],
        )
        run = self.wait_run(self.stack.trainer.StartRun(T.StartRunRequest(spec=spec), metadata=self.stack.auth, timeout=10).run.run_id, f"{case.name} detector i{iteration}")
        accepted = run.status == T.RUN_STATUS_SUCCEEDED
        samples = ds.split_counts.train + ds.split_counts.val + ds.split_counts.test
        entry = {
            "name": detector,
            "case": case.name,
            "iteration": iteration,
            "version": int(run.model.version) if accepted else 0,
            "samples": samples,
            "dataset": f"{ds.name}@{ds.version}",
            "status": T.RunStatus.Name(run.status).removeprefix("RUN_STATUS_"),
            "gate": "; ".join(run.gate_report.reasons) or run.error,
        }
        self.result.detectors.append(entry)
        self.say(f"[blue]detector[/] {detector} v{run.model.version} from {what} ({samples} samples): {entry['status'].lower()} ({entry['gate']})")
        return accepted

    def retrain_detectors(self, iteration: int) -> None:
        """The labels the triggered arm paid for join the seed set: the cases its triggers found at
        distances and angles the seed set lacks, and their false alarms (hard negatives). The next
        version, beamed under the same name, fires on more of the case and less on what it confused.
        (Only paid-for labels: the uploads the arm did not pick are labelled for the yield figures,
        not for its training.)"""
        picked = self.arms["triggered"].picked
        if not picked:
            return
        for case in self.scenario.cases:
            if case.name in self.published:
                positives = sum(self.shows(sid, case.name) for sid in picked)
                self.train_detector(case, iteration, self.seed_ids + picked, f"the seed set and the triggered arm's {len(picked)} fleet labels ({positives} showing the case)")

    # ------------------------------------------------------------------ triggers
    def create_triggers(self) -> None:
        from google.protobuf import duration_pb2

        plans = trigger_plans(self.suffix, {c: d for c, d in self.detectors.items() if c in self.published}, self.s.duration_s, self.s.per_car_uploads, self.s.random_per_car)
        for p in plans:
            spec = S.TriggerSpec(
                name=p.trigger_id,
                expression=p.expression,
                site=S.TRIGGER_SITE_FLEET if p.fleet else S.TRIGGER_SITE_EDGE,
                task=self.scenario.tasks[0],
                priority=p.priority,
                firing_mode=S.FIRING_MODE_EVERY_FRAME if p.every_frame else S.FIRING_MODE_RISING_EDGE,
                min_interval=duration_pb2.Duration(seconds=int(p.min_interval_s), nanos=int((p.min_interval_s % 1) * 1e9)),
                upload_budget=100_000,
                max_uploads_per_car_hour=p.per_car_hour,
                description=f"demo {self.suffix}: {'the data engine' if p.source == 'triggered' else 'random pool of the baselines'}",
            )
            check = self.stack.catalog.ValidateTrigger(S.ValidateTriggerRequest(expression=spec.expression, spec=spec), metadata=self.stack.auth, timeout=10)
            if not check.ok:
                raise RuntimeError(f"trigger {p.trigger_id} does not validate: {check.errors}")
            self.stack.catalog.CreateTrigger(S.CreateTriggerRequest(trigger_id=p.trigger_id, spec=spec), metadata=self.stack.auth, timeout=10)
            self.triggers[p.trigger_id] = TriggerStats(p.trigger_id, p.source, p.expression, site="fleet" if p.fleet else "edge", priority=p.priority, case=p.case)
        self.result.triggers = list(self.triggers.values())
        self.say(f"[magenta]operator[/] created triggers {', '.join(self.triggers)}")

    def backtest_and_activate(self, since_ms: int) -> None:
        from google.protobuf import timestamp_pb2

        start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
        start.FromMilliseconds(since_ms)
        end.GetCurrentTime()
        for trigger_id, stats in self.triggers.items():
            try:
                bt = self.stack.catalog.BacktestTrigger(S.BacktestTriggerRequest(trigger=S.TriggerRef(trigger_id=trigger_id), time_range=C.TimeRange(since=start, until=end)), metadata=self.stack.auth, timeout=120)
                stats.backtest_fires, stats.backtest_frames = int(bt.fires), int(bt.frames_evaluated)
                self.say(f"[magenta]operator[/] backtest {trigger_id}: {bt.fires} fires in {bt.frames_evaluated} frames ({bt.fires_per_car_hour:.0f}/car-hour)")
            except grpc.RpcError as exc:
                self.result.notes.append(f"backtest of {trigger_id} failed: {exc.code().name} {exc.details()}")
            self.stack.catalog.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=self.stack.auth, timeout=10)
        self.say(f"[magenta]operator[/] activated {len(self.triggers)} triggers")

    def retire_triggers(self) -> None:
        for trigger_id in self.triggers:
            try:
                self.stack.catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=trigger_id, reason="demo finished"), metadata=self.stack.auth, timeout=10)
            except grpc.RpcError:
                pass

    # ------------------------------------------------------------------ fleet
    def drive(self, iteration: int, duration_s: float, label: str):
        import torch

        from longtail.synthetic.world import World

        from fleet_sim.fleet import SimConfig, SimulatedFleet

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        self.drives += 1
        # Every drive starts its cars from its own seed: content-addressed uploads of a re-driven
        # route would store nothing new. Fleet-side fires come back as upload requests after the
        # (faster than real time) drive moved on: the cars keep the drive and wait for late requests.
        sim = SimConfig(
            cars=self.s.cars,
            duration_s=duration_s,
            fps=self.s.fps,
            seed=(zlib.crc32(self.suffix.encode()) % 100_000) * 1000 + self.drives,
            vehicle_prefix=f"{self.suffix}-{label}",
            ring_frames=min(300, int(duration_s * self.s.fps) + 1),
            request_grace_s=3.0,
            tls_dir=str(self.stack.pki),
        )
        fleet = SimulatedFleet(
            sim,
            World(self.fleet_world, seed=self.seed),
            self.model,
            store=self.stack.objects,
            gateway_address=self.stack.processes["gateway"].address,
            token_secret=self.stack.fleet_secret,
            truth_tags={"case": lambda objects: bool(self.scenario.cases_shown(objects)), **{f"case:{c.name}": c.truth for c in self.scenario.cases}},
        )
        t0, last = time.perf_counter(), [0.0]

        def progress(report, fraction):
            if time.perf_counter() - last[0] > 5 or fraction >= 1:
                last[0] = time.perf_counter()
                self.say(f"[cyan]fleet[/] {label}: {fraction:4.0%} {report.frames:,} frames, {sum(report.fires.values())} fires, {report.uploads} uploads")

        report = drive_loop().run_until_complete(fleet.run(progress))
        wall = time.perf_counter() - t0
        self.say(
            f"[cyan]fleet[/] {label}: {report.frames:,} frames ({report.frames / max(wall, 1e-9):,.0f}/s) on {', '.join(sorted(report.models))}, "
            f"{report.uploads} uploads, {report.upload_errors} upload errors ({report.upload_retries} retried)"
            + (f", shadow mode: {report.shadow_frames:,} frames compared, {report.shadow_disagreements} disagreements" if report.shadow_frames else "")
        )
        self.result.fleet.append(
            {
                "iteration": iteration,
                "label": label,
                "frames": report.frames,
                "acked": report.frames_acked,
                "fires": dict(report.fires),
                "uploads": report.uploads,
                "upload_errors": report.upload_errors,
                "models": dict(report.models),
                "shadow_frames": report.shadow_frames,
                "shadow_disagreements": report.shadow_disagreements,
                "case_frames": report.truth_frames.get("case", 0),
                "case_frames_by_case": {c.name: report.truth_frames.get(f"case:{c.name}", 0) for c in self.scenario.cases},
                "wall_s": round(wall, 1),
                "upload_retries": report.upload_retries,
            }
        )
        self.uploaded.update(sid for sid, tid in report.snapshot_ids.items() if tid in self.triggers)
        for tid, n in report.fires.items():
            if tid in self.triggers:
                self.triggers[tid].fires += n
        if report.uploads_existing:
            self.result.notes.append(f"{label}: {report.uploads_existing} uploads were already stored (identical content)")
        return report

    def collect(self) -> None:
        """Wait until the label store registered the drives' uploads, label them, and add them to the pools."""
        t0 = time.perf_counter()
        samples = self.wait_for_samples()
        t1 = time.perf_counter()
        labelled_now = label_queue(self.stack, self.ground_truth, self.seed)
        self.result.labels_total += labelled_now
        self.say(f"[green]label-store[/] {len(samples)} uploads registered ({t1 - t0:.0f}s); {labelled_now} labelled by the simulated labellers ({labelled_now / max(time.perf_counter() - t1, 1e-9):.0f}/s)")
        labelled = {s.sample_id for s in self.list_samples(list(self.triggers), L.LABEL_STATUS_LABELLED)}
        for s in sorted(samples, key=lambda s: (s.provenance.captured_at.ToNanoseconds(), s.sample_id)):
            stats = self.triggers.get(s.provenance.trigger_id)
            if stats is None or s.sample_id in self.counted:
                continue
            self.counted.add(s.sample_id)
            stats.uploads += 1
            if s.sample_id not in labelled:
                continue
            stats.labelled += 1
            shown = self.cases_shown(s.sample_id)
            stats.true_positive += bool(shown)
            for case in shown:
                stats.by_case[case] = stats.by_case.get(case, 0) + 1
            self.pool[stats.source].append(PoolSample(s.sample_id, s.provenance.trigger_id, s.provenance.captured_at.ToNanoseconds(), s.bucket, s.object_key, s.content_type))
        for stats in self.triggers.values():
            if stats.site == "fleet":  # fired on the server: the evaluator's yield ledger counts them
                yields = self.stack.catalog.GetYield(S.GetYieldRequest(trigger_id=stats.trigger_id), timeout=30).yields
                stats.fires = sum(int(y.fired) for y in yields)
        self.say(f"[green]label-store[/] pools: {len(self.pool['triggered'])} triggered, {len(self.pool['random'])} random labelled uploads")

    def list_samples(self, trigger_ids: list[str], status: L.LabelStatus = L.LABEL_STATUS_UNSPECIFIED) -> list:
        out, token = [], ""
        flt = L.SampleFilter(trigger_ids=trigger_ids, tasks=self.scenario.tasks if status else [], label_status=status)
        while True:
            page = self.stack.labels.ListSamples(L.ListSamplesRequest(filter=flt, page_size=500, page_token=token), timeout=30)
            out.extend(page.samples)
            token = page.next_page_token
            if not token:
                return out

    def wait_for_samples(self, patience: float = 120.0) -> list:
        """Until the label store registered every upload the gateway acknowledged (it registers them
        from the snapshot events, in batches), or `patience` seconds passed without progress: then
        the missing ones are named in a note (an acknowledged upload must never go missing)."""
        since, last = time.monotonic(), -1
        while True:
            samples = self.list_samples(list(self.triggers))
            missing = self.uploaded - {s.sample_id for s in samples}
            if not missing:
                return samples
            if len(missing) != last:
                last, since = len(missing), time.monotonic()
            elif time.monotonic() - since > patience:
                self.result.notes.append(f"the label store did not register {len(missing)} acknowledged uploads in time, e.g. {sorted(missing)[0][:12]}")
                return samples
            time.sleep(1.0)

    # ------------------------------------------------------------------ ground truth
    def ground_truth(self, sample_id: str) -> dict | None:
        if sample_id not in self.truth:
            try:
                self.truth[sample_id] = json.loads(self.stack.objects.get(f"groundtruth/{sample_id}.json"))
            except Exception:  # noqa: BLE001 - not uploaded by a simulator
                return None
        return self.truth[sample_id]

    def cases_shown(self, sample_id: str) -> list[str]:
        """The cases the sample's firing frame shows (ground truth)."""
        from label_store.labellers import firing_objects

        truth = self.ground_truth(sample_id)
        return self.scenario.cases_shown(firing_objects(truth)) if truth else []

    def is_positive(self, sample_id: str) -> bool:
        return bool(self.cases_shown(sample_id))

    def shows(self, sample_id: str, case: str) -> bool:
        return case in self.cases_shown(sample_id)

    def shows_unmet_case(self) -> Callable[[str], bool]:
        """Whether a paid-for label shows a case the triggered arm has not reached yet (every case
        once it reached them all): its triggers' estimated yield follows what is still missing."""
        ledger = self.result.arms.get("triggered")
        short = set(ledger.short_of_target()) if ledger is not None else set()
        wanted = {c for c, suite in self.result.cases.items() if suite in short} or set(self.result.cases)
        return lambda sample_id: any(c in wanted for c in self.cases_shown(sample_id))

    # ------------------------------------------------------------------ training
    def entropies(self, arm: str, pool: list[PoolSample]) -> list[float]:
        """Entropy of the stop-sign output of `arm`'s current PRODUCTION model on each sample."""
        from longtail.model import torchscript

        from trainer import data as data_mod

        mv = self.stack.trainer.GetModel(T.GetModelRequest(model=C.ModelRef(name=self.lines[arm])), timeout=10).model
        model = torchscript.from_bytes(self.stack.objects.get(mv.weights_key))
        missing = [s for s in pool if s.sample_id not in self.images]
        if missing:
            fetched = data_mod.fetch_images(lambda bucket, key: self.stack.objects.get(key), [data_mod.Example(s.sample_id, "", s.bucket, s.object_key, s.content_type) for s in missing])
            self.images.update(zip((s.sample_id for s in missing), fetched))
        task = self.scenario.tasks[0]
        out = []
        for prediction in model.predict(np.stack([self.images[s.sample_id] for s in pool])):
            p = np.array([v for v in prediction[task]["class_scores"].values() if v > 0.0])
            out.append(float(-(p * np.log(p)).sum()))
        return out

    def dataset(self, arm: Arm, iteration: int):
        ds = self.stack.labels.CreateDataset(
            L.CreateDatasetRequest(
                name=f"demo-{self.suffix}-{arm.name}",
                tasks=self.scenario.tasks,
                filter=L.SampleFilter(sample_ids=self.seed_ids + arm.picked),
                split=L.SplitSpec(val_fraction=0.1, test_fraction=0.0),
                description=f"demo {self.suffix}: {arm.name} arm, iteration {iteration}",
            ),
            metadata=self.stack.auth,
            timeout=120,
        ).dataset
        return ds

    def start_run(self, arm: str, iteration: int, dataset) -> str:
        from google.protobuf import struct_pb2

        hp = struct_pb2.Struct()
        hp.update({"lr": 0.001, "replay_samples": self.s.replay_samples})  # rehearsal of the common case: synthetic, no labels
        # The triggered arm's accepted versions become CANDIDATEs (shadow mode first), the others' PRODUCTION.
        spec = T.RunSpec(model_name=self.lines[arm], promote=arm != "triggered", seed=self.seed * 100 + iteration, epochs=self.s.epochs, hyperparameters=hp, datasets=[C.DatasetRef(name=dataset.name, version=dataset.version)])
        return self.stack.trainer.StartRun(T.StartRunRequest(spec=spec), metadata=self.stack.auth, timeout=10).run.run_id

    def wait_run(self, run_id: str, label: str, timeout: float = 1200.0):
        deadline, shown = time.monotonic() + timeout, -1.0
        while True:
            run = self.stack.trainer.GetRun(T.GetRunRequest(run_id=run_id), timeout=10).run
            if run.status in (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED):
                return run
            if run.progress - shown >= 0.25:
                shown = run.progress
                self.say(f"[blue]trainer[/] {label}: {T.RunPhase.Name(run.phase).removeprefix('RUN_PHASE_').lower()} {run.progress:.0%}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} ({label}) did not finish in {timeout:.0f}s")
            time.sleep(0.5)

    def record(self, arm: str, run, c: Candidate) -> None:
        gate = run.gate_report
        c.run_id = run.run_id
        c.status = T.RunStatus.Name(run.status).removeprefix("RUN_STATUS_")
        c.accepted = run.status == T.RUN_STATUS_SUCCEEDED and gate.accepted
        c.version = int(run.model.version)
        c.reasons = list(gate.reasons) + ([run.error] if run.error else [])
        c.datasets_used = list(run.datasets_used)
        c.candidate = {g.suite: SuiteScore.of(g.after_pass_rate, g.total) for g in gate.suites if g.suite in self.result.suites}
        before = {g.suite: SuiteScore.of(g.before_pass_rate, g.total) for g in gate.suites if g.suite in self.result.suites}
        if not self.result.baseline and before and c.iteration == 1:
            self.result.baseline = before  # every arm's first run is gated against the same v1
            for ledger in self.result.arms.values():
                ledger.baseline = self.result.baseline  # one baseline, not a copy per arm
        c.production = dict(c.candidate if c.accepted else self.production.get(arm, before))
        self.production[arm] = c.production
        self.result.arms[arm].record(c)
        verdict = ("accepted -> CANDIDATE" if arm == "triggered" else "accepted -> PRODUCTION") if c.accepted else f"{c.status.lower()} ({'; '.join(c.reasons)[:160]})"
        on_cases = ", ".join(f"{suite} {c.candidate[suite].passed}/{c.candidate[suite].cases}" if suite in c.candidate else f"{suite} n/a" for suite in self.scenario.case_suites)
        self.say(f"[blue]gate[/] {arm} i{c.iteration} v{c.version} ({c.labels} labels): {verdict}; candidate: {on_cases}")
        if c.accepted and arm == "triggered":
            self.shadow_and_promote(c)

    def shadow_and_promote(self, c: Candidate) -> None:
        """The fleet runs the gate-accepted CANDIDATE beside PRODUCTION for a short drive; the cars'
        reports, summed up by CompareModels, go into the promotion decision and the report."""
        from google.protobuf import timestamp_pb2

        name = self.triggered_line
        since = timestamp_pb2.Timestamp()
        since.GetCurrentTime()
        report = self.drive(c.iteration, min(self.s.shadow_s, self.s.duration_s), f"i{c.iteration}-shadow")
        request = T.CompareModelsRequest(production=C.ModelRef(name=name), candidate=C.ModelRef(name=name, version=c.version))
        request.time_range.since.CopyFrom(since)
        deadline = time.monotonic() + 30
        while True:  # the gateway produces the cars' last reports asynchronously
            r = self.stack.trainer.CompareModels(request, timeout=120)
            if r.frames_compared >= report.shadow_frames or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        c.shadow = {
            "frames_compared": int(r.frames_compared),
            "frames_disagreeing": int(r.frames_disagreeing),
            "cars": int(r.distinct_vehicles),
            "disagreement_rate": round(r.disagreement_rate, 4),
            "by_kind": {k.removeprefix("SHADOW_DIFFERENCE_KIND_"): int(v) for k, v in r.by_kind.items()},
        }
        evidence = f"shadow mode on {r.distinct_vehicles} cars: {r.frames_disagreeing}/{r.frames_compared} frames disagree ({r.disagreement_rate:.1%})"
        self.say(f"[magenta]operator[/] {name} v{c.version}: {evidence}; promoting")
        self.stack.trainer.PromoteModel(T.PromoteModelRequest(model=C.ModelRef(name=name, version=c.version), role=C.MODEL_ROLE_PRODUCTION, reason=f"demo {self.suffix}: gate accepted; {evidence}"), metadata=self.stack.auth, timeout=30)


# ---------------------------------------------------------------------- label store helpers
def register_frames(stack: Stack, frames, vehicle: str, trigger_id: str = "") -> list[str]:
    """Rendered frames as samples (image + ground truth for the simulated labellers); their ids."""
    from longtail.storage import SNAPSHOTS

    from trainer import data as data_mod

    ids = []
    for img, gt in zip(frames.images, frames.truths):
        put = stack.objects.put_content(data_mod.png(img), SNAPSHOTS, ".png", "image/png")
        truth = {"snapshot_id": put.sha256, "vehicle_id": vehicle, "firing_frame_id": "f", "frames": [{"frame_id": "f", "objects": [o.to_dict() for o in gt]}]}
        stack.objects.put_at(f"groundtruth/{put.sha256}.json", json.dumps(truth).encode(), "application/json")
        sample = L.Sample(sample_id=put.sha256, bucket=stack.objects.bucket, object_key=put.key, content_type="image/png", provenance=L.Provenance(vehicle_id=vehicle, frame_id=put.sha256[:12], trigger_id=trigger_id))
        stack.labels.RegisterSample(L.RegisterSampleRequest(sample=sample), metadata=stack.auth, timeout=10)
        if put.sha256 not in ids:
            ids.append(put.sha256)
    return ids


def label_queue(stack: Stack, ground_truth: Callable[[str], dict | None], seed: int, task_name: str = "stop_sign", labellers: int = 4, limit: int | None = None) -> int:
    """Simulated labellers (`labellers` of them, each its own thread and labeller id) work the queue
    dry, or until `limit` labels (label_store.labellers.annotate, error rate 0.02), in the queue's
    order. Each sample's errors are drawn from its own seeded generator, so a run's labels do not
    depend on which labeller took which sample."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from label_store.labellers import annotate

    task = stack.labels.GetTask(L.GetTaskRequest(name=task_name), timeout=10).task
    budget, lock = [limit if limit is not None else math.inf], threading.Lock()

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def work(labeller: int) -> int:
        done, skipped = 0, set()
        me = stack.token_metadata(f"demo-simulated-labeller-{labeller}", "labeller")  # the label store takes the labeller id from the token
        while take():
            lease = stack.labels.GetNextTask(L.GetNextTaskRequest(task=task_name), metadata=me, timeout=10).lease
            if not lease.lease_id:
                return done
            sid = lease.sample.sample_id
            truth = ground_truth(sid)
            annotation = annotate(task, truth, ERROR_RATE, random.Random(f"{seed}:{sid}")) if truth is not None else None
            if annotation is None:
                # No ground truth (not a simulator upload): keep the lease so the queue hands out the
                # next sample; once a skipped one comes back (its lease expired) the queue went round.
                if sid in skipped:
                    return done
                skipped.add(sid)
                with lock:
                    budget[0] += 1  # not labelled: the budget stays
                continue
            label = L.Label(sample_id=sid, task=task_name, labeller_kind=L.LABELLER_KIND_SIMULATED, annotation=annotation)
            stack.labels.SubmitLabel(L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key=lease.lease_id, label=label), metadata=me, timeout=10)
            done += 1
        return done

    with ThreadPoolExecutor(labellers, thread_name_prefix="labeller") as pool:
        return sum(pool.map(work, range(labellers)))
