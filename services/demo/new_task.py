"""A new task declared in the middle of the demo (`--new-task caution_lights`): the declaration a
person would write, applied while everything runs, then taken to certified by the product's task
workflow (task_workflow) with no demo code in between: the demo only plays the fleet (it drives
every iteration) and the labellers (they label what the workflow asks its queue for).

The task trains its own model line, started from the same bootstrap v1 as every arm, so the
experiment's arms stay comparable; its gate runs every suite, which is how "no other suite
regressed meanwhile" is measured.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from demo.stack import Stack

if TYPE_CHECKING:
    from task_workflow.workflow import Workflow

# What the person declares (tasks.yaml syntax); MODEL is the task's model line.
DECLARATIONS = {
    "caution_lights": """
tasks:
  - name: caution_lights
    prototype: detection
    classes: [vehicle]
    attributes: {lights: ["off", hazard, police]}
    object_size_m: 1.6
    description: The vehicle ahead has its hazard or police lights on.
    suite: {name: caution_lights.regressions, predicate: "any(d.cls == vehicle and d.attr.lights != off and d.conf >= 0.5)"}
    workflow: {seed_labels: 200, shadow_frames: 2000, labels_per_iteration: 150, suite_cases: 100, holdout_every: 2, target: 0.9, max_iterations: 6,
               priority: 4, upload_budget: 100000000, model: MODEL, epochs: 40,
               suite_admission: "any(d.cls == vehicle and d.attr.lights != off and d.height >= 0.09)"}
""",
}
# The phenomenon in the fleet's world while a new task runs: parked vehicles, 40% with their lights
# on (twice the world's default: 80 cars on 30-second drives stand in for a fleet that sees
# thousands of them a day; at 20% the trigger brought 67 uploads a drive, and filling the suite
# alone took ten drives).
WORLD: dict[str, dict[str, Any]] = {"caution_lights": {"vehicle_rate": 0.3, "hazard_rate": 0.3, "police_rate": 0.1}}  # WorldConfig fields


@dataclass
class NewTaskResult:
    name: str
    declared_at_iteration: int
    certified_at_iteration: int | None = None
    labels: int = 0  # labels the simulated labellers gave the task (what its workflow asked for)
    minutes: float = 0.0  # declaration to certified (or to the end of the run, if it was not certified)
    other_suites_regressed: bool = False
    step: str = ""
    waiting_for: str = ""
    blocked_reason: str = ""
    pass_rate: float | None = None
    suite_cases: int = 0
    model_version: int = 0
    history: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "declared_at_iteration": self.declared_at_iteration,
            "certified_at_iteration": self.certified_at_iteration,
            "labels": self.labels,
            "minutes": round(self.minutes, 2),
            "other_suites_regressed": self.other_suites_regressed,
        }


class NewTask:
    def __init__(self, stack: Stack, name: str, line: str, model, seed: int, say: Callable[[str], None]) -> None:
        if name not in DECLARATIONS:
            raise ValueError(f"--new-task {name!r}: one of {', '.join(DECLARATIONS)}")
        self.stack, self.name, self.line, self.model, self.seed, self.say = stack, name, line, model, seed, say
        self.workflow: Workflow | None = None
        self.result: NewTaskResult | None = None
        self._declared_wall = 0.0

    @property
    def declared(self) -> bool:
        return self.workflow is not None

    @property
    def pending(self) -> bool:
        """Declared and neither certified nor blocked: the fleet keeps driving for it."""
        return self.workflow is not None and self.workflow.state.step not in ("certified", "blocked")

    def declare(self, iteration: int) -> None:
        from longtail.common.v1 import common_pb2 as C
        from longtail.model import torchscript
        from longtail.models.v1 import trainer_pb2 as T
        from longtail.tasks import parse

        from task_workflow.engine import GrpcEngine
        from task_workflow.state import StateStore
        from task_workflow.workflow import Workflow

        self.stack.trainer.ImportModel(
            T.ImportModelRequest(model_name=self.line, weights=torchscript.to_bytes(self.model), role=C.MODEL_ROLE_PRODUCTION, reason=f"bootstrap model: the baseline of the {self.name} task's line"), metadata=self.stack.auth, timeout=60
        )
        (declared,) = parse(DECLARATIONS[self.name].replace("MODEL", self.line), f"{self.name} declaration")
        engine = GrpcEngine(self.stack.labels, self.stack.trainer, self.stack.catalog, self.stack.auth)
        outcome = engine.declare(declared)
        self.workflow = Workflow(declared, engine, StateStore(self.stack.objects), say=lambda m: self.say(f"[magenta]workflow[/] {m}"), fresh=outcome == "created")
        self._declared_wall = time.perf_counter()
        self.result = NewTaskResult(self.name, iteration)
        self.say(f"[magenta]operator[/] declared the task {self.name} ({outcome} in the label store): its workflow runs from here")

    def step(self, iteration: int) -> None:
        """Label what the workflow waits for, then let it go as far as it can."""
        from demo.experiment import label_queue

        wf, result = self._declared()
        for _ in range(4):
            wf.run()
            wanted = self._labels_wanted()
            if not wanted:
                break
            given = label_queue(self.stack, self._truth, self.seed, task_name=self.name, limit=wanted)
            result.labels += given
            if not given:
                break
        s, r = wf.state, result
        r.step, r.waiting_for, r.blocked_reason = s.step, s.waiting_for, s.blocked_reason
        r.pass_rate, r.suite_cases, r.model_version, r.other_suites_regressed = s.pass_rate, s.suite_cases, s.model_version, s.other_suites_regressed
        r.history = [asdict(e) for e in s.history]
        newly_certified = s.step == "certified" and r.certified_at_iteration is None
        if newly_certified:
            r.certified_at_iteration = iteration
        if r.certified_at_iteration is None or newly_certified:  # the clock stops at certification
            r.minutes = (time.perf_counter() - self._declared_wall) / 60.0
        self.say(f"[magenta]workflow[/] {self.name} at {s.step}" + (f": waiting for {s.waiting_for}" if s.waiting_for else ""))

    def _declared(self) -> tuple[Workflow, NewTaskResult]:
        assert self.workflow is not None and self.result is not None, "declare() first"
        return self.workflow, self.result

    def _labels_wanted(self) -> int:
        """How many labels of the task the workflow waits for (0 when it waits for something else)."""
        wf, _ = self._declared()
        s, cfg = wf.state, wf.settings
        if s.step == "seed_set":
            return max(0, s.seed_wanted - len(wf.engine.labelled(self.name)))
        if s.step == "sourcing":
            done = len(wf.engine.labelled(self.name, s.trigger_id)) - s.sourced_before
            return max(0, cfg.labels_per_iteration - done)
        return 0

    def _truth(self, sample_id: str) -> dict | None:
        try:
            return json.loads(self.stack.objects.get(f"groundtruth/{sample_id}.json"))
        except Exception:  # noqa: BLE001 - not a simulator sample
            return None

    def retire(self) -> None:
        from longtail.triggers.v1 import triggers_pb2 as S

        if self.workflow is None:  # not declared
            return
        for trigger_id in (self.workflow.state.trigger_id, self.workflow.state.shadow_trigger_id):
            try:
                self.stack.catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=trigger_id, reason="demo finished"), metadata=self.stack.auth, timeout=10)
            except Exception:  # noqa: BLE001 - never created, or retired already
                pass
