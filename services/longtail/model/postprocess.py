"""Post-processing: the network's raw head outputs -> per image, task -> a plain dict of
probabilities, boxes, ranges and bearings, or keypoints (`postprocess`); `predict_with` runs an
eager or scripted network on frames and post-processes its outputs. Needs only the tasks, not the
network code (`longtail.predictions` turns the dicts into the contracts' messages).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from longtail.tasks import TaskSpec


def _boxes(raw: torch.Tensor) -> torch.Tensor:
    """Raw [N, 4] -> (x_min, y_min, x_max, y_max) in [0, 1]."""
    s = torch.sigmoid(raw)
    cx, cy, w, h = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1).clamp(0.0, 1.0)


def predict_with(module: Callable, tasks: Sequence[TaskSpec], images: np.ndarray | torch.Tensor, camera_hfov_deg: float = 60.0, batch_size: int = 256, device: torch.device | None = None) -> list[dict[str, dict]]:
    """Run an eager or scripted network and post-process its outputs (see `postprocess`). With a
    `device` other than the CPU (the module must be there), batches go there and outputs come back."""
    x = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if x.dim() == 3:
        x = x.unsqueeze(0)
    was_training = getattr(module, "training", False)
    if hasattr(module, "eval"):
        module.eval()
    results: list[dict[str, dict]] = []
    with torch.no_grad():  # not inference_mode: TorchScript modules reject inference tensors
        for i in range(0, x.shape[0], batch_size):
            if device is None or device.type == "cpu":
                results += postprocess(tasks, module(x[i : i + batch_size]), camera_hfov_deg)
                continue
            raw = module(x[i : i + batch_size].to(device, non_blocking=True))
            results += postprocess(tasks, {t: {k: v.cpu() for k, v in out.items()} for t, out in raw.items()}, camera_hfov_deg)
    if was_training and hasattr(module, "train"):
        module.train()
    return results


def postprocess(tasks: Sequence[TaskSpec], raw: Mapping[str, Mapping[str, torch.Tensor]], camera_hfov_deg: float = 60.0) -> list[dict[str, dict]]:
    """Raw head outputs -> per image, task -> a plain dict:

    - detection: presence (probability the task's object is in view), cls, class_scores
      (including "background" = 1 - presence), box (x_min, y_min, x_max, y_max), attributes,
      attribute_scores, attribute_probs, range_m (from the box height and `object_size_m`, or
      None), bearing_rad (left positive);
    - classification: cls, probabilities, attributes, attribute_scores, attribute_probs;
    - landmark: keypoints [(name, x, y, visible probability)].
    """
    n = next(iter(next(iter(raw.values())).values())).shape[0]
    per_image: list[dict[str, dict]] = [{} for _ in range(n)]
    f_norm = 0.5 / math.tan(math.radians(camera_hfov_deg) / 2.0)  # focal length / image width
    for t in tasks:
        out = raw[t.name]
        attrs = {k: torch.softmax(out[f"attr:{k}"].float(), dim=1).numpy() for k in t.attributes}
        if t.prototype == "detection":
            presence = torch.sigmoid(out["presence"][:, 0].float()).numpy()
            boxes = _boxes(out["box"].float()).numpy()
            cls_p = torch.softmax(out["logits"].float(), 1).numpy() if len(t.classes) > 1 else np.ones((n, 1), np.float32)
        elif t.prototype == "classification":
            cls_p = torch.softmax(out["logits"].float(), 1).numpy()
        else:
            kp = torch.sigmoid(out["keypoints"].float()).numpy()
            vis = torch.sigmoid(out["visible"].float()).numpy()
        for i in range(n):
            d: dict[str, Any] = {}
            if t.prototype == "landmark":
                d["keypoints"] = [(name, float(kp[i, 2 * j]), float(kp[i, 2 * j + 1]), float(vis[i, j])) for j, name in enumerate(t.keypoints)]
                per_image[i][t.name] = d
                continue
            ap = {k: {v: float(p[i, j]) for j, v in enumerate(t.attributes[k])} for k, p in attrs.items()}
            d["attribute_probs"] = ap
            d["attributes"] = {k: max(v, key=v.__getitem__) for k, v in ap.items()}
            d["attribute_scores"] = {k: ap[k][d["attributes"][k]] for k in ap}
            ci = int(np.argmax(cls_p[i]))
            d["cls"] = t.classes[ci]
            if t.prototype == "detection":
                p = float(presence[i])
                d["presence"] = p
                d["confidence"] = p * float(cls_p[i, ci])
                d["class_scores"] = {c: p * float(cls_p[i, j]) for j, c in enumerate(t.classes)}
                d["class_scores"]["background"] = 1.0 - p
                b = boxes[i]
                d["box"] = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
                height = float(b[3] - b[1])
                d["range_m"] = t.object_size_m * f_norm / height if t.object_size_m > 0 and height > 1e-3 else None
                d["bearing_rad"] = math.atan2(0.5 - float(b[0] + b[2]) / 2.0, f_norm)
            else:
                d["probabilities"] = {c: float(cls_p[i, j]) for j, c in enumerate(t.classes)}
                d["confidence"] = float(cls_p[i, ci])
            per_image[i][t.name] = d
    return per_image
