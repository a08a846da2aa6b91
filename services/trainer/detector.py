"""Trigger detectors: a small model for one long-tail case, trained from a few labelled examples,
beamed to the cars with a trigger and scored by the trigger language as `score("name@version")`.

A detector is the shared `MultiTaskNet` with a narrow backbone and a single binary classification
task named after the detector (classes `absent`, `present`); its score is P(present). Publishing it
through the same model repository gives it the same guarantees (validated archive, sha256,
manifest) and the same delivery path: `ModelPublished(role=TRIGGER_DETECTOR, detector_name)` ->
the gateway sends `UpdateTriggerModel` to every car -> the car writes the score into
`Frame.trigger_scores["<name>@<version>"]`, which `score("<name>@<version>")` reads.

Positives and negatives come from labelled samples: a sample is positive when the trigger-language
`positive_predicate` holds for its label (e.g. `any(d.cls == stop_sign and d.attr.occlusion ==
foliage)`), negative otherwise. With few examples, training repeats them with light augmentation
(horizontal flip, brightness, shifts of a few pixels) and balances the classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from google.protobuf import json_format

from longtail.common.v1 import common_pb2 as C
from longtail.model import fitting
from longtail.model.network import MultiTaskNet
from longtail.tasks import TaskSpec

CHANNELS = (8, 16, 24, 32)
CLASSES = ("absent", "present")


def spec(name: str) -> TaskSpec:
    return TaskSpec(name, "classification", CLASSES, hidden=32)


def new_detector(name: str, seed: int) -> MultiTaskNet:
    torch.manual_seed(seed)
    return MultiTaskNet([spec(name)], CHANNELS)


def key(name: str, version: int) -> str:
    """The `Frame.trigger_scores` key and `score(...)` argument of a published detector."""
    return f"{name}@{int(version)}"


def label_prediction(task: str, annotation: Mapping) -> C.TaskPrediction:
    """A label (TaskOutput JSON) presented as a prediction, so trigger-language predicates apply
    to it; objects of a label are certain (confidence 1)."""
    pred = C.TaskPrediction(task=task)
    json_format.ParseDict(dict(annotation), pred.output, ignore_unknown_fields=True)
    if pred.output.WhichOneof("value") == "detection":
        for d in pred.output.detection.detections:
            if d.confidence == 0:
                d.confidence = 1.0
    return pred


def is_positive(predicate: str, task: str, annotation: Mapping | None) -> bool:
    from longtail.triggerlang.predicates import evaluate  # one predicate language for suites, triggers and this

    if annotation is None:
        return False
    return evaluate(predicate, label_prediction(task, annotation)).passed


def augment(images: np.ndarray, labels: np.ndarray, copies: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`copies` augmented copies of every image (flip, brightness x0.8-1.2, shift <= 3 px), with
    the minority class oversampled to balance."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if len(pos) and len(neg):
        target = max(len(pos), len(neg))
        pos = np.concatenate([pos, rng.choice(pos, target - len(pos))]) if len(pos) < target else pos
        neg = np.concatenate([neg, rng.choice(neg, target - len(neg))]) if len(neg) < target else neg
    base = np.concatenate([pos, neg])
    out_x, out_y = [], []
    for _ in range(max(1, copies)):
        x = images[base].astype(np.float32)
        flip = rng.random(len(base)) < 0.5
        x[flip] = x[flip, :, ::-1]
        x *= rng.uniform(0.8, 1.2, (len(base), 1, 1, 1)).astype(np.float32)
        dx, dy = rng.integers(-3, 4, 2)
        x = np.roll(x, (int(dy), int(dx)), axis=(1, 2))
        out_x.append(np.clip(x, 0, 255).astype(np.uint8))
        out_y.append(labels[base])
    return np.concatenate(out_x), np.concatenate(out_y)


def train_detector(name: str, images: np.ndarray, labels: np.ndarray, *, seed: int = 0, epochs: int = 12, copies: int = 8, batch_size: int = 64, lr: float = 3e-3, on_step=None) -> MultiTaskNet:
    """Train a detector on images (uint8 NHWC) with labels 1 (positive) / 0 (negative)."""
    net = new_detector(name, seed)
    x, y = augment(images, np.asarray(labels, dtype=np.int64), copies, seed)
    anns = [{name: CLASSES[int(v)]} for v in y]
    fitting.fit(net, x, fitting.encode_targets(net.tasks, anns), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, on_step=on_step)
    return net


def scores(net, images: np.ndarray) -> np.ndarray:
    """P(present) per image, for a detector (eager or `load_scripted`)."""
    task = net.tasks[0].name
    return np.array([p[task]["probabilities"]["present"] for p in net.predict(images)], dtype=np.float64)


def frame_scores(name: str, version: int, net, images: np.ndarray) -> list[dict[str, float]]:
    """Per image, the `Frame.trigger_scores` entry a car running this detector writes."""
    k = key(name, version)
    return [{k: float(s)} for s in scores(net, images)]


def auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(a random positive scores above a random negative), ties count half."""
    if not len(pos) or not len(neg):
        return float("nan")
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))
