"""The hyperparameters a run accepts (`RunSpec.hyperparameters`), checked when the run is submitted.

A misspelt key or a value out of range used to be noticed, if at all, minutes later when the run
failed or, worse, silently ignored; `check` refuses the run up front with every problem named.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from longtail.models.v1 import trainer_pb2 as T

from trainer.data import WORLDS

BACKENDS = ("local", "torchrun", "kubernetes")  # trainer.backends


@dataclass(frozen=True)
class Hyperparameter:
    kind: type  # float, int or str
    valid: Callable[[Any], bool]  # called with a float (numeric kinds) or a str
    rule: str  # what a valid value is, for the error message


def _positive_int(v: float) -> bool:
    return float(v).is_integer() and v >= 1


def _count(v: float) -> bool:
    return float(v).is_integer() and v >= 0


KNOWN: dict[str, Hyperparameter] = {
    "lr": Hyperparameter(float, lambda v: 0 < v <= 1, "a learning rate in (0, 1]"),
    "batch_size": Hyperparameter(int, _positive_int, "an integer >= 1"),
    "fallback_samples": Hyperparameter(int, _positive_int, "an integer >= 1 (generated frames when a run has no labelled data)"),
    "fallback_world": Hyperparameter(str, lambda v: v in WORLDS, f"one of {', '.join(WORLDS)}"),
    "replay_samples": Hyperparameter(int, _count, "an integer >= 0 (generated frames mixed into the training data)"),
    "replay_world": Hyperparameter(str, lambda v: v in WORLDS, f"one of {', '.join(WORLDS)}"),
    "train_heads": Hyperparameter(str, lambda v: True, "comma-separated task names (the heads to train; empty: all)"),
    "branch_blocks": Hyperparameter(int, _count, "an integer >= 0 (a head new to the network gets its own copy of the last N backbone blocks)"),
    "min_auc": Hyperparameter(float, lambda v: 0 <= v <= 1, "an AUC in [0, 1] (a trigger detector's gate)"),
    "backend": Hyperparameter(str, lambda v: v in BACKENDS, f"one of {', '.join(BACKENDS)} (where the run trains: trainer.backends; default TRAINER_BACKEND)"),
    "processes": Hyperparameter(int, lambda v: float(v).is_integer() and 1 <= v <= 64, "an integer in [1, 64] (training processes per node of the torchrun and kubernetes backends)"),
}


def _value(spec: T.RunSpec, key: str):
    v = spec.hyperparameters.fields[key]
    kind = v.WhichOneof("kind")
    return {"number_value": v.number_value, "string_value": v.string_value, "bool_value": v.bool_value}.get(kind)


def check(spec: T.RunSpec, task_names: set[str]) -> None:
    """Raise ValueError naming every unknown key and every invalid value of `spec.hyperparameters`."""
    problems = []
    for key in sorted(spec.hyperparameters.fields):
        hp = KNOWN.get(key)
        if hp is None:
            problems.append(f"{key}: unknown (known: {', '.join(sorted(KNOWN))})")
            continue
        value = _value(spec, key)
        numeric = isinstance(value, float) and not isinstance(value, bool)
        if hp.kind is str:
            ok = isinstance(value, str) and hp.valid(value)
        else:
            ok = numeric and math.isfinite(value) and hp.valid(value)
        if ok and key == "train_heads":
            unknown = {h.strip() for h in value.split(",") if h.strip()} - task_names
            if unknown:
                problems.append(f"train_heads: not tasks of this run: {', '.join(sorted(unknown))}")
            continue
        if not ok:
            problems.append(f"{key}: {value!r} is not {hp.rule}")
    if problems:
        raise ValueError("spec.hyperparameters: " + "; ".join(problems))


def get(spec: T.RunSpec, key: str, default):
    """The value of `key` in the spec's type (`check` has passed), or `default` when absent."""
    if key not in spec.hyperparameters.fields:
        return default
    return KNOWN[key].kind(_value(spec, key)) if key in KNOWN else _value(spec, key)
