"""Task declarations (tasks.yaml): one entry per task, an instance of a `longtail.model` prototype.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from longtail.model import TaskSpec

_SPEC_KEYS = {"name", "prototype", "classes", "attributes", "keypoints", "object_size_m", "hidden"}
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
        entry: dict[str, Any] = {**self.spec.to_dict(), "description": self.description, "labels_per_sample": self.labels_per_sample,
                                 "suite": {"name": self.suite_name, "predicate": self.suite_predicate}}
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
        out.append(DeclaredTask(spec, str(item.get("description", "")), int(item.get("labels_per_sample", 1) or 1),
                                str(suite.get("name") or f"{spec.name}.regressions"), str(suite.get("predicate") or "").strip(), dict(workflow)))
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

    prototype = {"classification": C.TASK_PROTOTYPE_CLASSIFICATION, "detection": C.TASK_PROTOTYPE_DETECTION,
                 "landmark": C.TASK_PROTOTYPE_LANDMARK}[task.spec.prototype]
    out = L.Task(name=task.name, prototype=prototype, classes=task.spec.classes, keypoint_names=task.spec.keypoints,
                 description=task.description or f"{task.name} ({task.spec.prototype})", labels_per_sample=task.labels_per_sample,
                 object_size_m=task.spec.object_size_m)
    for name, values in task.spec.attributes.items():
        out.attributes.add(name=name, values=values)
    return out


def default_suite_yaml(task: DeclaredTask) -> str:
    """An empty default suite for the task (cases are promoted into it from the fleet)."""
    doc: dict[str, Any] = {"suite": task.suite_name, "task": task.name,
                           "description": f"Regression cases for {task.name} (declared in tasks.yaml)."}
    if task.suite_predicate:
        doc["predicate"] = task.suite_predicate
    doc["cases"] = []
    return yaml.safe_dump(doc, sort_keys=False, width=200)
