"""Pure functions of the inference service: decode a snapshot into an image, and turn the model's
post-processed outputs into `common.v1.TaskPrediction`s with their uncertainty.

Uncertainty (what the label store ranks its queues by):
- classification: entropy (nats) and margin (top-1 minus top-2) of the class distribution;
- detection: the same over the task's class scores including "background" (1 - presence), so a
  stop sign the model is unsure exists (presence 0.5) is as uncertain as it gets;
- landmark: the largest binary entropy and the smallest margin |2p - 1| of the keypoints'
  visibility probabilities.
"""

from __future__ import annotations

import io
import math
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from longtail.common.v1 import common_pb2
from longtail.model import to_detections
from longtail.tasks import TaskSpec

MAX_IMAGE_BYTES = 4 * 1024 * 1024
MAX_PIXELS = 4096 * 4096  # a decompression bomb fails here, not in memory
MIN_SIDE = 16  # the backbone halves the image four times
MIN_DETECTION_CONFIDENCE = 0.25  # as on the cars: low-confidence instances stay visible to labellers
PROTOTYPES = {
    "classification": common_pb2.TASK_PROTOTYPE_CLASSIFICATION,
    "detection": common_pb2.TASK_PROTOTYPE_DETECTION,
    "landmark": common_pb2.TASK_PROTOTYPE_LANDMARK,
}


class BadImage(ValueError):
    """The bytes are not an image this service can score (the record is dead-lettered)."""


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) > 262 and data[257:262] == b"ustar":
        return "application/x-tar"
    return ""


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 RGB [H, W, 3]."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise BadImage(f"image of {img.width}x{img.height} pixels is larger than {MAX_PIXELS}")
            rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise BadImage(f"not a decodable image: {exc}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < MIN_SIDE:
        raise BadImage(f"image shape {rgb.shape}: expected RGB of at least {MIN_SIDE}x{MIN_SIDE} pixels")
    return rgb


def decode_snapshot(data: bytes, content_type: str = "", frame_id: str = "", clip_frame_ids: Sequence[str] = ()) -> np.ndarray:
    """A snapshot object -> the image to score. A clip (tar of `<i>.png`, `clip_frame_ids[i]`) is
    scored on its firing frame (`frame_id`), or its first frame when that is not in the clip."""
    kind = content_type or _sniff(data)
    if kind in ("image/png", "image/jpeg"):
        return decode_image(data)
    if kind != "application/x-tar":
        raise BadImage(f"unsupported content type {content_type!r}")
    index = list(clip_frame_ids).index(frame_id) if frame_id in clip_frame_ids else 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            names = {m.name: m for m in tar.getmembers() if m.isfile()}
            member = names.get(f"{index}.png") or names.get("0.png")
            if member is None:
                raise BadImage(f"clip has no frame {index}.png (members: {sorted(names)[:5]})")
            return decode_image(tar.extractfile(member).read())
    except tarfile.TarError as exc:
        raise BadImage(f"not a readable clip: {exc}") from None


# ------------------------------------------------------------------------------------------
# Predictions and uncertainty
# ------------------------------------------------------------------------------------------


def entropy_margin(probabilities: Iterable[float]) -> tuple[float, float]:
    """(Shannon entropy in nats, top-1 minus top-2) of a distribution."""
    p = np.clip(np.asarray(list(probabilities), dtype=np.float64), 0.0, 1.0)
    if p.size == 0:
        return 0.0, 1.0
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    top = np.sort(p)[::-1]
    margin = float(top[0] - (top[1] if top.size > 1 else 0.0))
    return max(entropy, 0.0), min(max(margin, 0.0), 1.0)


def _binary(p: float) -> tuple[float, float]:
    return entropy_margin((p, 1.0 - p))


def task_prediction(task: TaskSpec, out: Mapping[str, Any], min_confidence: float = MIN_DETECTION_CONFIDENCE) -> common_pb2.TaskPrediction:
    """One task's `longtail.model.postprocess` output -> a TaskPrediction with uncertainty."""
    pred = common_pb2.TaskPrediction(task=task.name, prototype=PROTOTYPES[task.prototype])
    if task.prototype == "detection":
        pred.output.detection.detections.extend(to_detections({task.name: out}, min_confidence))
        entropy, margin = entropy_margin(out["class_scores"].values())
    elif task.prototype == "classification":
        c = pred.output.classification
        c.cls = out["cls"]
        for name, p in out["probabilities"].items():
            c.probabilities[name] = float(p)
        for k, v in out["attributes"].items():
            c.attributes[k] = v
            c.attribute_scores[k] = float(out["attribute_scores"][k])
        entropy, margin = entropy_margin(out["probabilities"].values())
    else:
        entropy, margin = 0.0, 1.0
        for name, x, y, p in out["keypoints"]:
            pred.output.landmark.keypoints.add(name=name, x=x, y=y, visible=p >= 0.5, confidence=max(p, 1.0 - p))
            e, m = _binary(p)
            entropy, margin = max(entropy, e), min(margin, m)
    if not (math.isfinite(entropy) and math.isfinite(margin)):
        raise ValueError(f"{task.name}: non-finite uncertainty")
    pred.uncertainty.entropy = entropy
    pred.uncertainty.margin = margin
    return pred


def predictions(tasks: Sequence[TaskSpec], outputs: Mapping[str, Mapping[str, Any]], only: Iterable[str] = ()) -> dict[str, common_pb2.TaskPrediction]:
    """One image's post-processed outputs -> {task: TaskPrediction} (all tasks, or `only`)."""
    wanted = set(only)
    return {t.name: task_prediction(t, outputs[t.name]) for t in tasks if not wanted or t.name in wanted}
