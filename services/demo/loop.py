"""`longtail demo`: the data engine against its baselines, as a fair experiment on real processes
and real infrastructure.

  stack up (infrastructure, every service its own process) -> held-out suites registered -> per
  seed (`--seeds`): an experiment (demo.experiment) with four arms -- triggered (the data
  engine), random, uncertainty, seed-only -- each from the same baseline, seed set, label budget
  per iteration, recipe and suites, until it reaches the target or its label cap -> report.

The pieces: `demo.stack` (processes and clients), `demo.scenario` (the long-tail case, suites,
seed set, triggers), `demo.arms` (one class per sampling strategy), `demo.experiment` (one seed's
loop), `demo.accounting` (what is recorded, labels to target), `demo.report` (report.md, plots,
results.json, summary.json).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from demo.accounting import DemoResult
from demo.arms import default_arms
from demo.experiment import ExperimentRun, Settings, register_frames
from demo.new_task import DECLARATIONS
from demo.scenario import CASES, Scenario
from demo.stack import Stack

BOOTSTRAP_SEED = 3  # the fleet's shadow model and the baseline (cached by fleet_sim.bootstrap)


@dataclass
class DemoConfig:
    cars: int = 80  # at 5 fps: the frames (render cost) of 40 cars at 10 fps, twice the signs passed
    budget: int = 40  # fleet labels every arm adds in iteration 1 (then x growth per iteration)
    growth: float = 2.0  # per-iteration growth of the label budget (1.0 = constant)
    target: float = 0.90  # pass rate on the case's suite that ends an arm's iterations (docs/demo.md: why not 0.95)
    tolerance: float = 0.02  # ... provided no other suite fell more than this below the baseline
    cap_factor: float = 10.0  # label cap of the baselines: this x the triggered arm's labels to target
    max_iterations: int = 8
    duration_s: float = 60.0  # simulated seconds the fleet drives per iteration
    fps: float = 5.0  # frames per second per car: the triggers' upload spacing is >= 0.5 s, so 10 fps mostly renders frames nobody uploads
    suite_cases: int = 100  # cases per suite
    seed_examples: int = 20  # the seed set's positives (and four times as many fleet-like negatives)
    per_car_uploads: int = 2  # uploads per car, trigger and drive of the triggered arm's triggers
    random_per_car: int = 15  # uploads per car and drive of the random pool
    shadow_s: float = 10.0  # simulated seconds the fleet runs a candidate in shadow mode before promotion
    replay_samples: int = 400  # synthetic common-case frames each run rehearses (against forgetting; no labels)
    # Of each fine-tuning run. 12 teaches the attribute cases from fewer positives offline (handheld
    # 30% -> 95% with 61), but on the fleet the occluded candidates then lost cases the bootstrap
    # passed (69% at 380 labels against 90% with 6: runs 0be549, 6559fa; docs/demo.md).
    epochs: int = 6
    seeds: list[int] = field(default_factory=lambda: [0])  # world/fleet seeds, one experiment each
    cases: list[str] = field(default_factory=lambda: ["occluded", "handheld", "temporary"])  # long-tail cases worked at once (demo.scenario.CASES)
    explore: float = 0.2  # share of the triggered arm's budget spread over its triggers regardless of their measured yield
    new_task: str = ""  # a task declared in the middle of the run (demo.new_task.DECLARATIONS), "" for none
    new_task_at: int = 2  # ... at the start of this iteration
    out: Path = Path("out/demo")
    triton: bool = True  # inference (pre-labels) needs Triton
    prometheus: bool = True  # a local Prometheus scraping every service (skipped with a note if not installed)
    manage_infra: bool = True  # start the infrastructure (and stop it unless keep_running)
    keep_running: bool = False

    def validate(self) -> None:
        checks = {
            "cars": self.cars >= 1,
            "budget": self.budget >= 1,
            "growth": self.growth >= 1.0,
            "target": 0.0 < self.target <= 1.0,
            "tolerance": 0.0 <= self.tolerance < 1.0,
            "cap-factor": self.cap_factor >= 1.0,
            "max-iterations": self.max_iterations >= 1,
            "duration": self.duration_s > 0,
            "fps": 0.5 <= self.fps <= 30.0,
            "suite-cases": self.suite_cases >= 1,
            "seed-examples": self.seed_examples >= 2,
            "per-car-uploads": self.per_car_uploads >= 1,
            "random-per-car": self.random_per_car >= 1,
            "shadow-s": self.shadow_s > 0,
            "epochs": self.epochs >= 1,
            "seeds": bool(self.seeds) and len(set(self.seeds)) == len(self.seeds),
            "cases": bool(self.cases) and len(set(self.cases)) == len(self.cases) and all(c in CASES for c in self.cases),
            "new-task": self.new_task in ("", *DECLARATIONS),
            "new-task-at": not self.new_task or 1 <= self.new_task_at <= self.max_iterations,
            "explore": 0.0 <= self.explore <= 1.0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("invalid demo settings: --" + ", --".join(bad) + " (see `longtail demo --help` for the ranges; cases: " + ", ".join(CASES) + "; new tasks: " + ", ".join(DECLARATIONS) + ")")

    def settings(self) -> Settings:
        return Settings(
            cars=self.cars,
            duration_s=self.duration_s,
            fps=self.fps,
            budget=self.budget,
            growth=self.growth,
            target=self.target,
            tolerance=self.tolerance,
            cap_factor=self.cap_factor,
            max_iterations=self.max_iterations,
            per_car_uploads=self.per_car_uploads,
            random_per_car=self.random_per_car,
            shadow_s=self.shadow_s,
            replay_samples=self.replay_samples,
            epochs=self.epochs,
            new_task=self.new_task,
            new_task_at=self.new_task_at,
        )


class Demo:
    def __init__(self, config: DemoConfig, say: Callable[[str], None] = print) -> None:
        config.validate()
        self.config = config
        self.say = say
        self.run_id = uuid.uuid4().hex[:6]
        self.stack = Stack(self.run_id, say, config.manage_infra, config.triton, config.prometheus)
        self.scenario = Scenario(cases=tuple(CASES[c] for c in config.cases), suite_cases=config.suite_cases, seed_positives=config.seed_examples)
        self.result = DemoResult(run=self.run_id, config=asdict(config))
        self.on_experiment: Callable[[DemoResult], object] | None = None

    @property
    def processes(self) -> dict:
        return self.stack.processes

    def register_suites(self) -> dict[str, int]:
        """The held-out suites, fixed before any arm runs."""
        import yaml

        from longtail.labels.v1 import labels_pb2 as L

        counts = {}
        for spec in self.scenario.suites:
            ids = register_frames(self.stack, self.scenario.suite_frames(spec), f"suite-{self.run_id}")
            text = yaml.safe_dump(
                {"suite": spec.name, "task": spec.task, "predicate": spec.predicate, "description": f"{spec.name}: {len(ids)} held-out cases rendered by the demo {self.run_id}", "cases": [{"sample": s} for s in ids]}, sort_keys=False
            )
            self.stack.labels.UpsertSuite(L.UpsertSuiteRequest(yaml=text), metadata=self.stack.auth, timeout=30)
            counts[spec.name] = len(ids)
        self.say(f"[blue]suites[/] {', '.join(f'{s} ({c} cases)' for s, c in counts.items())}")
        return counts

    def retire_stale_triggers(self) -> None:
        """Triggers an interrupted demo run left ACTIVE would still be beamed to this run's cars and
        upload into its label store: retire them (they are the demo operator's, from other runs)."""
        from longtail.triggers.v1 import triggers_pb2 as S

        stale = self.stack.catalog.ListTriggers(S.ListTriggersRequest(states=[S.TRIGGER_STATE_ACTIVE, S.TRIGGER_STATE_PAUSED], page_size=1000), metadata=self.stack.auth, timeout=30).triggers
        stale = [t for t in stale if t.created_by == "demo-operator"]
        for t in stale:
            self.stack.catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=t.trigger_id, reason=f"left active by an interrupted demo run (seen by {self.run_id})"), metadata=self.stack.auth, timeout=10)
        if stale:
            self.result.notes.append(f"retired {len(stale)} triggers an interrupted earlier demo run had left active")
            self.say(f"[yellow]operator[/] retired {len(stale)} triggers an interrupted earlier demo run had left active")

    def run(self) -> DemoResult:
        from fleet_sim.bootstrap import train_bootstrap_model
        from map_vision.seed import simulator_map, write_seed_file

        started = time.perf_counter()
        self.stack.infra_up()
        try:
            self.stack.state.mkdir(parents=True, exist_ok=True)
            seed_map = write_seed_file(simulator_map(world_seed=self.config.seeds[0]), self.stack.state / "seed-map.json")
            self.stack.configure(fleet_model=f"demo-{self.run_id}-s{self.config.seeds[0]}-triggered", seed_map=seed_map)
            for name in ("label-store", "trigger-evaluator", "trainer", "map-vision"):
                self.stack.start(name)
            self.stack.clients()
            self.retire_stale_triggers()
            t0 = time.perf_counter()
            model = train_bootstrap_model(seed=BOOTSTRAP_SEED, log=lambda m: self.say(f"[blue]bootstrap[/] {m}"))
            model.eval()
            self.say(f"[blue]baseline[/] bootstrap model ready in {time.perf_counter() - t0:.1f}s (trained on common cases only)")
            suites = self.register_suites()
            for seed in self.config.seeds:
                if seed != self.config.seeds[0]:  # map-vision's map is the world's
                    self.stack.start("map-vision", MAP_VISION_SEED_FILE=str(write_seed_file(simulator_map(world_seed=seed), self.stack.state / f"seed-map-{seed}.json")))
                experiment = ExperimentRun(self.stack, self.config.settings(), self.scenario, default_arms(self.config.explore), seed, model, suites, self.say, self.run_id)
                try:
                    self.result.experiments.append(experiment.run())
                except BaseException as exc:  # Ctrl-C, SIGTERM, a failed service: keep what this seed finished for the report
                    if experiment.result.arms and any(ledger.candidates for ledger in experiment.result.arms.values()):
                        experiment.result.notes.append(f"seed {seed} was interrupted ({type(exc).__name__}: {exc}); the figures are those of its finished iterations")
                        for ledger in experiment.result.arms.values():
                            ledger.stopped = ledger.stopped or "interrupted"
                        self.result.experiments.append(experiment.result)
                    raise
                if self.on_experiment is not None:  # e.g. write the report so far: a long --seeds run keeps what it finished
                    self.result.wall_seconds = time.perf_counter() - started
                    self.on_experiment(self.result)
        finally:
            self.result.notes.extend(self.stack.notes)
            self.result.wall_seconds = time.perf_counter() - started
            if not self.config.keep_running:
                self.stack.stop()
        return self.result

    def stop(self) -> None:
        self.stack.stop(keep_infra=self.config.keep_running)


def run(config: DemoConfig, say: Callable[[str], None] = print) -> tuple[DemoResult, Path, Demo]:
    """Run the experiment and write the report. With keep_running the services are still up on
    return (they die with this process: PR_SET_PDEATHSIG) -- call `demo.stop()` when done."""
    from demo import report

    demo = Demo(config, say)
    if len(config.seeds) > 1:
        demo.on_experiment = lambda partial: report.write(partial, config.out)
    try:
        result = demo.run()
    except BaseException:
        if demo.result.experiments:  # an interrupted run still reports what it finished
            say(f"[yellow]interrupted[/]: the report of the finished iterations is {report.write(demo.result, config.out)}")
        raise
    path = report.write(result, config.out)
    say(f"[bold green]report[/] {path}")
    return result, path, demo
