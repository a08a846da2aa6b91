"""Task declarations: `TaskSpec` (a task as an instance of a prototype) and tasks.yaml, one entry per task.

Torch-free, so that services which only need the label schema (the label store) do not load the network.

    tasks:
      - name: caution_lights_on
        prototype: classification
        classes: ["off", "on"]
        attributes: {}                    # optional: name -> allowed values
        description: Hazard lights of the vehicle ahead are on.
        suite: {name: caution_lights_on.regressions, predicate: "any(d.cls == on and d.conf >= 0.5)"}

From one declaration the trainer derives everything with no code change: the network head
(`TaskSpec` -> `MultiTaskNet`), the label store task (label schema and labelling queue, via
`UpsertTask`), and the task's default unit-test suite (`UpsertSuite`, created empty if missing;
cases are promoted into it later). Metrics are named `val/<task>/<metric>` for every task.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from longtail.common.v1 import common_pb2

PROTOTYPES = ("classification", "detection", "landmark")
_NAME = re.compile(r"^[a-z0-9_]+$")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    prototype: str = "classification"
    classes: tuple[str, ...] = ()
    attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    keypoints: tuple[str, ...] = ()  # landmark only
    object_size_m: float = 0.0  # detection: physical height of the box, for monocular range
    hidden: int = 64  # width of the head's hidden layer
    branch_blocks: int = 0  # its own copy of the backbone's last N blocks: training it moves no other task (0: shared)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "keypoints", tuple(self.keypoints))
        object.__setattr__(self, "attributes", {str(k): tuple(v) for k, v in dict(self.attributes).items()})
        if not _NAME.match(self.name):
            raise ValueError(f"task name {self.name!r} must match [a-z0-9_]+")
        if self.prototype not in PROTOTYPES:
            raise ValueError(f"task {self.name}: prototype {self.prototype!r} is not one of {PROTOTYPES}")
        if self.prototype == "classification" and len(self.classes) < 2:
            raise ValueError(f"task {self.name}: classification needs at least two classes")
        if self.prototype == "detection" and len(self.classes) < 1:
            raise ValueError(f"task {self.name}: detection needs at least one class")
        if self.prototype == "landmark" and not self.keypoints:
            raise ValueError(f"task {self.name}: landmark needs keypoints")
        for k, values in self.attributes.items():
            if not _NAME.match(k) or len(values) < 1 or len(set(values)) != len(values):
                raise ValueError(f"task {self.name}: bad attribute {k!r}: {values}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"task {self.name}: duplicate classes")
        if not isinstance(self.branch_blocks, int) or self.branch_blocks < 0:
            raise ValueError(f"task {self.name}: branch_blocks must be an integer >= 0, not {self.branch_blocks!r}")

    def outputs(self) -> list[tuple[str, int]]:
        """(output name, width) of the head, in order."""
        out: list[tuple[str, int]] = []
        if self.prototype == "detection":
            out += [("presence", 1), ("box", 4)]
            if len(self.classes) > 1:
                out.append(("logits", len(self.classes)))
        elif self.prototype == "classification":
            out.append(("logits", len(self.classes)))
        else:
            out += [("keypoints", 2 * len(self.keypoints)), ("visible", len(self.keypoints))]
        out += [(f"attr:{k}", len(v)) for k, v in self.attributes.items()]
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "prototype": self.prototype,
            "classes": list(self.classes),
            "attributes": {k: list(v) for k, v in self.attributes.items()},
            "keypoints": list(self.keypoints),
            "object_size_m": self.object_size_m,
            "hidden": self.hidden,
            **({"branch_blocks": self.branch_blocks} if self.branch_blocks else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        return cls(
            name=d["name"],
            prototype=d.get("prototype", "classification"),
            classes=tuple(d.get("classes", ())),
            attributes={k: tuple(v) for k, v in (d.get("attributes") or {}).items()},
            keypoints=tuple(d.get("keypoints", ())),
            object_size_m=float(d.get("object_size_m", 0.0)),
            hidden=int(d.get("hidden", 64)),
            branch_blocks=int(d.get("branch_blocks", 0)),
        )

    @classmethod
    def from_proto(cls, task, object_size_m: float = 0.0) -> TaskSpec:
        """From a `labels.v1.Task` declaration (`object_size_m` overrides the one it carries)."""
        names = {common_pb2.TASK_PROTOTYPE_CLASSIFICATION: "classification", common_pb2.TASK_PROTOTYPE_DETECTION: "detection", common_pb2.TASK_PROTOTYPE_LANDMARK: "landmark"}
        if task.prototype not in names:
            raise ValueError(f"task {task.name}: prototype {task.prototype} has no head in this network")
        return cls(
            name=task.name,
            prototype=names[task.prototype],
            classes=tuple(task.classes),
            attributes={a.name: tuple(a.values) for a in task.attributes if a.values},
            keypoints=tuple(task.keypoint_names),
            object_size_m=object_size_m or float(getattr(task, "object_size_m", 0.0)),
        )


STOP_SIGN_TASK = TaskSpec(
    "stop_sign",
    "detection",
    ("stop_sign",),
    {"occlusion": ("none", "foliage"), "mount": ("pole", "handheld", "gate"), "modifier": ("none", "except_right_turn"), "temporary": ("false", "true")},
    object_size_m=1.8,
)
TRAFFIC_LIGHT_TASK = TaskSpec("traffic_light", "detection", ("traffic_light",), {"light_state": ("red", "yellow", "green")}, object_size_m=2.2)
DEFAULT_TASKS: tuple[TaskSpec, ...] = (STOP_SIGN_TASK, TRAFFIC_LIGHT_TASK)


def tasks_from_dicts(items: Sequence[Mapping[str, Any]]) -> list[TaskSpec]:
    """From a parsed task list (e.g. tasks.yaml: `tasks: [{name, prototype, classes, ...}]`)."""
    tasks = [TaskSpec.from_dict(d) for d in items]
    if len({t.name for t in tasks}) != len(tasks):
        raise ValueError("duplicate task names")
    return tasks


_SPEC_KEYS = {"name", "prototype", "classes", "attributes", "keypoints", "object_size_m", "hidden", "branch_blocks"}
_EXTRA_KEYS = {"description", "labels_per_sample", "suite", "workflow"}


class TaskFileError(ValueError):
    pass


@dataclass(frozen=True)
class DeclaredTask:
    spec: TaskSpec
    description: str = ""
    labels_per_sample: int = 1
    suite_name: str = ""
    suite_predicate: str = ""
    workflow: dict[str, Any] = field(default_factory=dict, hash=False)  # the task workflow's settings (task_workflow.settings)

    @property
    def name(self) -> str:
        return self.spec.name

    def to_yaml(self) -> str:
        """The declaration as a tasks.yaml document of its own (`parse` gives it back)."""
        entry: dict[str, Any] = {**self.spec.to_dict(), "description": self.description, "labels_per_sample": self.labels_per_sample, "suite": {"name": self.suite_name, "predicate": self.suite_predicate}}
        if self.workflow:
            entry["workflow"] = dict(self.workflow)
        return yaml.safe_dump({"tasks": [entry]}, sort_keys=False, width=200)


def default_path() -> Path:
    """$TRAINER_TASKS_FILE, else ./tasks.yaml, else the repository's tasks.yaml."""
    env = os.environ.get("TRAINER_TASKS_FILE", "").strip()
    if env:
        return Path(env)
    here = Path("tasks.yaml")
    if here.exists():
        return here
    return Path(__file__).resolve().parents[2] / "tasks.yaml"


def parse(text: str, source: str = "tasks.yaml") -> list[DeclaredTask]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaskFileError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tasks"), list) or not doc["tasks"]:
        raise TaskFileError(f"{source}: expected a mapping with a non-empty `tasks:` list")
    out: list[DeclaredTask] = []
    for i, item in enumerate(doc["tasks"]):
        where = f"{source}: tasks[{i}]"
        if not isinstance(item, dict):
            raise TaskFileError(f"{where}: must be a mapping")
        unknown = set(item) - _SPEC_KEYS - _EXTRA_KEYS
        if unknown:
            raise TaskFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        d: dict[str, Any] = {k: item[k] for k in _SPEC_KEYS if k in item}
        d["classes"] = [str(c) for c in d.get("classes") or ()]
        d["attributes"] = {str(k): [str(v) for v in vs] for k, vs in (d.get("attributes") or {}).items()}
        try:
            spec = TaskSpec.from_dict(d)
        except (KeyError, ValueError, TypeError) as exc:
            raise TaskFileError(f"{where}: {exc}") from None
        suite = item.get("suite") or {}
        if not isinstance(suite, dict):
            raise TaskFileError(f"{where}.suite: must be a mapping with name and predicate")
        workflow = item.get("workflow") or {}
        if not isinstance(workflow, dict):
            raise TaskFileError(f"{where}.workflow: must be a mapping of settings")
        out.append(DeclaredTask(spec, str(item.get("description", "")), int(item.get("labels_per_sample", 1) or 1), str(suite.get("name") or f"{spec.name}.regressions"), str(suite.get("predicate") or "").strip(), dict(workflow)))
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise TaskFileError(f"{source}: duplicate task names")
    return out


def load(path: str | Path | None = None) -> list[DeclaredTask]:
    p = Path(path) if path else default_path()
    try:
        text = p.read_text()
    except OSError as exc:
        raise TaskFileError(f"cannot read the task declarations {p}: {exc}") from None
    return parse(text, str(p))


def label_store_task(task: DeclaredTask):
    """The `labels.v1.Task` the label store needs (its schema and queue) for a declaration."""
    from longtail.common.v1 import common_pb2 as C
    from longtail.labels.v1 import labels_pb2 as L

    prototype = {"classification": C.TASK_PROTOTYPE_CLASSIFICATION, "detection": C.TASK_PROTOTYPE_DETECTION, "landmark": C.TASK_PROTOTYPE_LANDMARK}[task.spec.prototype]
    out = L.Task(
        name=task.name,
        prototype=prototype,
        classes=task.spec.classes,
        keypoint_names=task.spec.keypoints,
        description=task.description or f"{task.name} ({task.spec.prototype})",
        labels_per_sample=task.labels_per_sample,
        object_size_m=task.spec.object_size_m,
    )
    for name, values in task.spec.attributes.items():
        out.attributes.add(name=name, values=values)
    return out


def default_suite_yaml(task: DeclaredTask) -> str:
    """An empty default suite for the task (cases are promoted into it from the fleet)."""
    doc: dict[str, Any] = {"suite": task.suite_name, "task": task.name, "description": f"Regression cases for {task.name} (declared in tasks.yaml)."}
    if task.suite_predicate:
        doc["predicate"] = task.suite_predicate
    doc["cases"] = []
    return yaml.safe_dump(doc, sort_keys=False, width=200)
