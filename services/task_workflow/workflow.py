"""The cookie cutter: one resumable workflow per declared task, a state machine over `Step`.

  seed_set -> detector -> trigger -> sourcing -> suite -> train -> certified
     ^           |  (gate refused: a seed set twice as large)   |
     +-----------+                      sourcing <--------------+ (not at target yet)

`advance()` runs the current step once and saves the state; a step that needs the world to move
(labels to be done, the fleet to drive) returns WAITING with what it waits for, and the next
`advance()` looks again. A step that cannot succeed BLOCKS with its reason; `resume()` retries it
(e.g. after the operator raised the upload budget). Nothing here is specific to a task: the
declaration's prototype, classes and suite predicate are all it reads.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from enum import Enum

from longtail.tasks import DeclaredTask, parse

from task_workflow.engine import Engine, TriggerPlan
from task_workflow.settings import WorkflowSettings
from task_workflow.state import StateStore, Step, WorkflowState


class Outcome(str, Enum):
    MOVED = "moved"  # the step finished; the next one can run now
    WAITING = "waiting"  # on labels or the fleet: `state.waiting_for` says what
    BLOCKED = "blocked"
    CERTIFIED = "certified"


class WorkflowError(ValueError):
    pass


def detector_name(task: str) -> str:
    return f"{task}_detector"


def trigger_id(task: str, declared_at: float) -> str:
    """Unique per declaration: the catalog keeps retired triggers, and a task may be declared again."""
    return f"detector-{task.replace('_', '-')}-{hashlib.sha256(f'{task}@{declared_at}'.encode()).hexdigest()[:6]}"


def held_out(sample_id: str, every: int) -> bool:
    """One labelled positive in `every` is a suite case, by its id (stable across retries)."""
    return int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16) % every == 0


def declared_task(state: WorkflowState) -> DeclaredTask:
    """The declaration a workflow was started (or last resumed) with."""
    if not state.declaration:
        raise WorkflowError(f"the workflow of {state.task} keeps no declaration: name the tasks file")
    return parse(state.declaration, f"the declaration kept with the workflow of {state.task}")[0]


class Workflow:
    @classmethod
    def of(cls, state: WorkflowState, engine: Engine, store: StateStore, **kw) -> Workflow:
        return cls(declared_task(state), engine, store, **kw)

    def __init__(self, task: DeclaredTask, engine: Engine, store: StateStore, settings: WorkflowSettings | None = None, clock: Callable[[], float] = time.time, say: Callable[[str], None] = lambda message: None, fresh: bool = False) -> None:
        """`fresh`: the task was just declared (new to the label store): a workflow kept under its
        name belongs to an earlier declaration and is archived, not resumed."""
        if not task.suite_predicate:
            raise WorkflowError(f"task {task.name}: its suite needs a predicate (what a positive is) for the workflow to run")
        self.task, self.engine, self.store, self.clock, self.say = task, engine, store, clock, say
        self.settings = settings or WorkflowSettings.from_dict(task.workflow)
        old = store.load(task.name)
        if old is not None and fresh:
            store.archive(old)
            old = None
        self.state = old or self._new()
        if self.state.declaration != task.to_yaml():  # e.g. resumed with a larger budget: the runner goes on with it
            self.state.declaration = task.to_yaml()
            store.save(self.state)

    def _new(self) -> WorkflowState:
        now = self.clock()
        state = WorkflowState(
            task=self.task.name, suite=self.task.suite_name, predicate=self.task.suite_predicate, declared_at=now, seed_wanted=self.settings.seed_labels, detector=detector_name(self.task.name), trigger_id=trigger_id(self.task.name, now)
        )
        state.note(f"declared ({self.task.spec.prototype}, classes {', '.join(self.task.spec.classes)})")
        self.store.save(state)
        return state

    # ------------------------------------------------------------------ driving
    def advance(self) -> Outcome:
        s = self.state
        if s.current is Step.CERTIFIED:
            return Outcome.CERTIFIED
        if s.current is Step.BLOCKED:
            return Outcome.BLOCKED
        handler = {Step.SEED_SET: self._seed_set, Step.DETECTOR: self._detector, Step.TRIGGER: self._trigger, Step.SOURCING: self._sourcing, Step.SUITE: self._suite, Step.TRAIN: self._train}[s.current]
        try:
            outcome = handler()
        except WorkflowError as exc:
            outcome = self._block(str(exc))
        if outcome is not Outcome.WAITING:
            s.waiting_for = ""
        self.store.save(s)
        return outcome

    def run(self, max_steps: int = 100) -> Outcome:
        """Advance until the workflow waits, blocks or is certified."""
        for _ in range(max_steps):
            outcome = self.advance()
            if outcome is not Outcome.MOVED:
                return outcome
        return Outcome.MOVED

    def resume(self) -> None:
        """A blocked workflow retries the step that blocked it: a new set of seed attempts, or one
        more round of sourcing and training (more with a larger workflow.max_iterations)."""
        s = self.state
        if s.current is not Step.BLOCKED:
            raise WorkflowError(f"task {s.task} is not blocked (it is at {s.step})")
        s.step, s.blocked_reason = s.blocked_step, ""
        if s.current in (Step.SEED_SET, Step.DETECTOR):
            s.seed_attempt = 1
        if s.iteration >= self.settings.max_iterations:
            s.iteration = self.settings.max_iterations - 1
        s.note(f"resumed at {s.step}")
        self.store.save(s)

    # ------------------------------------------------------------------ steps
    def _move(self, step: Step, what: str) -> Outcome:
        self.state.note(what)
        self.say(f"{self.task.name}: {what}")
        self.state.step = step.value
        return Outcome.MOVED

    def _wait(self, what: str) -> Outcome:
        self.state.waiting_for = what
        return Outcome.WAITING

    def _block(self, reason: str) -> Outcome:
        s = self.state
        s.blocked_step, s.blocked_reason = s.step, reason
        s.note(f"blocked: {reason}")
        self.say(f"{self.task.name}: blocked at {s.step}: {reason}")
        s.step = Step.BLOCKED.value
        return Outcome.BLOCKED

    @property
    def admitted(self) -> str:
        """What a positive worth sourcing and testing is, on a label: the suite's predicate and the
        admission rule. The detector learns it, so the trigger brings what the suite can admit."""
        admission = self.settings.suite_admission
        return f"({self.state.predicate}) and ({admission})" if admission else self.state.predicate

    def _seed_set(self) -> Outcome:
        s = self.state
        labelled = self.engine.labelled(s.task)
        s.labels = len(labelled)
        if len(labelled) < s.seed_wanted:
            return self._wait(f"{s.seed_wanted - len(labelled)} more labels of {s.task} from its queue (seed set {len(labelled)}/{s.seed_wanted}, attempt {s.seed_attempt})")
        s.seed_dataset = self.engine.dataset(f"{s.task}-seed", s.task, labelled, f"{s.task} workflow: seed set, attempt {s.seed_attempt}")
        return self._move(Step.DETECTOR, f"seed set {s.seed_dataset}: {len(labelled)} labelled samples")

    def _detector(self) -> Outcome:
        s = self.state
        r = self.engine.train_detector(s.detector, s.task, s.seed_dataset, self.admitted, seed=s.seed_attempt, epochs=self.settings.detector_epochs)
        if r.accepted:
            s.detector_version, s.detector_published_at = r.version, self.clock()
            return self._move(Step.TRIGGER, f"detector {s.detector} v{r.version} accepted and beamed to the fleet in shadow mode ({r.reason})")
        if s.seed_attempt >= self.settings.seed_attempts:
            raise WorkflowError(f"the detector failed its gate on {s.seed_attempt} seed sets, the last of {s.seed_wanted} labels: {r.reason}")
        s.seed_attempt += 1
        s.seed_wanted *= 2
        return self._move(Step.SEED_SET, f"detector refused ({r.reason}): asking for a seed set of {s.seed_wanted} labels")

    def _trigger(self) -> Outcome:
        s, cfg = self.state, self.settings
        if not s.shadow_trigger_id:
            # The cars run a detector only for an active trigger that calls it: a trigger that calls
            # it and can never fire (scores are at most 1) puts it on the cars in shadow mode, so the
            # real trigger's backtest runs on telemetry the detector scored.
            s.shadow_trigger_id = f"shadow-{s.trigger_id}"
            self.engine.ensure_trigger(TriggerPlan(s.shadow_trigger_id, f'score("{s.detector}") > 1', s.task, 0, 1, 1, f"{s.task} workflow: {s.detector} in shadow mode on the fleet (never fires)"))
            self.engine.activate(s.shadow_trigger_id)
            s.shadow_since = self.clock()
            s.note(f"{s.detector} in shadow mode on the fleet ({s.shadow_trigger_id})")
        self.engine.ensure_trigger(
            TriggerPlan(
                s.trigger_id,
                f'score("{s.detector}") > {cfg.detector_threshold:g}',
                s.task,
                cfg.priority,
                cfg.upload_budget,
                cfg.max_uploads_per_car_hour,
                f"{s.task} workflow: frames its seed-trained detector scores above {cfg.detector_threshold:g}",
            )
        )
        bt = self.engine.backtest(s.trigger_id, s.shadow_since)
        if bt.frames < cfg.shadow_frames:
            return self._wait(f"the fleet to score {cfg.shadow_frames:,} frames with {s.detector} in shadow mode ({bt.frames:,} so far) before the backtest")
        expected = bt.fires_per_car_hour * cfg.fleet_cars * cfg.budget_horizon_h
        evidence = f"backtest: {bt.fires} fires in {bt.frames:,} frames ({bt.fires_per_car_hour:.1f}/car-hour), {expected:,.0f} uploads expected in {cfg.budget_horizon_h:g} h on {cfg.fleet_cars} cars"
        if expected > cfg.upload_budget:
            raise WorkflowError(f"{s.trigger_id} not activated: {evidence}, over its upload budget of {cfg.upload_budget:,} (raise workflow.upload_budget or workflow.detector_threshold, then `longtail tasks resume`)")
        self.engine.activate(s.trigger_id)
        self.engine.retire(s.shadow_trigger_id, f"{s.trigger_id} is active")
        s.trigger_active, s.iteration = True, 1
        s.sourced_before = len(self.engine.labelled(s.task, s.trigger_id))
        return self._move(Step.SOURCING, f"{s.trigger_id} activated ({evidence}, within {cfg.upload_budget:,})")

    def _sourcing(self) -> Outcome:
        s = self.state
        done = len(self.engine.labelled(s.task, s.trigger_id)) - s.sourced_before
        if done < self.settings.labels_per_iteration:
            return self._wait(f"{self.settings.labels_per_iteration - done} more labelled uploads of {s.trigger_id} (iteration {s.iteration}: {done}/{self.settings.labels_per_iteration})")
        return self._move(Step.SUITE, f"iteration {s.iteration}: {done} labelled uploads of {s.trigger_id}")

    def _suite(self) -> Outcome:
        s, cfg = self.state, self.settings
        size = self.engine.suite_size(s.suite)
        promoted = 0
        if size < cfg.suite_cases:
            for sample_id in self.engine.labelled(s.task):
                if size + promoted >= cfg.suite_cases:
                    break
                if held_out(sample_id, cfg.holdout_every) and self.engine.is_positive(sample_id, s.task, self.admitted):
                    self.engine.promote(s.suite, sample_id, s.predicate, f"held out by the {s.task} workflow, iteration {s.iteration}")
                    promoted += 1
        s.suite_cases = size + promoted
        return self._move(Step.TRAIN, f"suite {s.suite}: {s.suite_cases} held-out cases (+{promoted})")

    def _train(self) -> Outcome:
        s, cfg = self.state, self.settings
        labelled = self.engine.labelled(s.task)  # suite cases are never training data
        s.labels = len(labelled) + s.suite_cases
        dataset = self.engine.dataset(f"{s.task}-train", s.task, labelled, f"{s.task} workflow, iteration {s.iteration}")
        if cfg.branch_blocks:  # the task's own branch, trained alone: nothing else can move, nothing to rehearse
            hyperparameters = {"lr": cfg.lr, "train_heads": s.task, "branch_blocks": cfg.branch_blocks}
        else:
            hyperparameters = {"lr": cfg.lr, "replay_samples": cfg.replay_samples, "replay_world": cfg.replay_world}
        r = self.engine.train(cfg.model, s.task, dataset, seed=s.iteration, epochs=cfg.epochs, promote=cfg.promote, hyperparameters=hyperparameters)
        passed, cases = r.suites.get(s.suite, (0, 0))
        others = [suite for suite in r.regressed if suite != s.suite]
        s.other_suites_regressed = s.other_suites_regressed or (r.accepted and bool(others))
        verdict = f"{cfg.model} v{r.version} on {dataset}: {s.suite} {passed}/{cases}"
        if r.accepted:
            s.model_version, s.passed, s.pass_rate = r.version, passed, passed / cases if cases else None
            if cases >= cfg.suite_cases and s.pass_rate is not None and s.pass_rate >= cfg.target:
                s.certified_at, s.certified_iteration = self.clock(), s.iteration
                self._move(Step.CERTIFIED, f"certified: {verdict} >= {cfg.target:.0%}, accepted by the gate ({r.reason[:300]})")
                return Outcome.CERTIFIED
            verdict += f" accepted by the gate ({r.reason[:300]}), {'below the target' if cases >= cfg.suite_cases else f'the suite needs {cfg.suite_cases} cases'}"
        else:
            verdict += f" refused by the gate ({r.reason[:300]})"
        if s.iteration >= cfg.max_iterations:
            raise WorkflowError(f"not certified after {s.iteration} iterations: {verdict}")
        s.iteration += 1
        s.sourced_before = len(self.engine.labelled(s.task, s.trigger_id))
        return self._move(Step.SOURCING, f"{verdict}; iteration {s.iteration} sources more")
