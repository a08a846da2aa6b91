"""A workflow's state: where it stands, what it waits for, what it did. One JSON document per task
in the object store (`workflows/<task>.json`), rewritten after every step: a workflow stopped at
any point resumes from its last step, and anyone can read where it stands."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import Enum

PREFIX = "workflows/"


class Step(str, Enum):
    SEED_SET = "seed_set"  # a seed set requested from labelling
    DETECTOR = "detector"  # a trigger detector trained on it (beamed to the fleet when its gate accepts it)
    TRIGGER = "trigger"  # the detector in shadow mode; its trigger created, backtested, activated within the budget
    SOURCING = "sourcing"  # the fleet's uploads labelled
    SUITE = "suite"  # held-out positives promoted into the task's suite
    TRAIN = "train"  # the multitask network retrained with the task's head, through the gate
    CERTIFIED = "certified"  # the task's suite at target, no other suite regressed
    BLOCKED = "blocked"  # a step failed for good: `blocked_reason` says why, `longtail tasks resume` goes on

    @property
    def order(self) -> int:
        return list(Step).index(self)


@dataclass
class Event:
    at: float
    step: str
    what: str


@dataclass
class WorkflowState:
    task: str
    suite: str
    predicate: str  # what a positive of the task is (the suite's predicate, over a label)
    declaration: str = ""  # the task's tasks.yaml entry as applied (a runner needs no file)
    step: str = Step.SEED_SET.value
    declared_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    iteration: int = 0  # retraining rounds started
    seed_wanted: int = 0
    seed_attempt: int = 1
    seed_dataset: str = ""
    detector: str = ""
    detector_version: int = 0
    detector_published_at: float = 0.0
    trigger_id: str = ""
    shadow_trigger_id: str = ""  # puts the detector on the cars before its trigger is active
    shadow_since: float = 0.0
    trigger_active: bool = False
    sourced_before: int = 0  # labelled uploads of the trigger when this iteration's sourcing started
    labels: int = 0  # samples labelled for the task (training and suite)
    suite_cases: int = 0
    model_version: int = 0
    pass_rate: float | None = None
    passed: int = 0
    other_suites_regressed: bool = False
    waiting_for: str = ""
    blocked_step: str = ""
    blocked_reason: str = ""
    certified_at: float | None = None
    certified_iteration: int | None = None
    history: list[Event] = field(default_factory=list)

    @property
    def current(self) -> Step:
        return Step(self.step)

    def note(self, what: str, step: Step | None = None) -> None:
        self.history.append(Event(round(time.time(), 3), (step or self.current).value, what))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkflowState:
        d = json.loads(text)
        d["history"] = [Event(**e) for e in d.get("history", [])]
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class StateStore:
    """Workflow states in the object store (`put_at`/`get`/`exists`/`list` of longtail.storage.ObjectStore)."""

    def __init__(self, objects) -> None:
        self.objects = objects

    @staticmethod
    def key(task: str) -> str:
        return f"{PREFIX}{task}.json"

    def load(self, task: str) -> WorkflowState | None:
        if not self.objects.exists(self.key(task)):
            return None
        return WorkflowState.from_json(self.objects.get(self.key(task)))

    def save(self, state: WorkflowState) -> None:
        state.updated_at = round(time.time(), 3)
        self.objects.put_at(self.key(state.task), state.to_json().encode(), "application/json")

    def archive(self, state: WorkflowState) -> str:
        """Keep a superseded workflow (its task was declared afresh, e.g. in a new label store)."""
        key = f"{PREFIX}archive/{state.task}@{state.declared_at:.3f}.json"
        self.objects.put_at(key, state.to_json().encode(), "application/json")
        return key

    def tasks(self) -> list[str]:
        names = (k.removeprefix(PREFIX) for k in self.objects.list(PREFIX))
        return sorted(n.removesuffix(".json") for n in names if n.endswith(".json") and "/" not in n)
