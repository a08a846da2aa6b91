"""Training and evaluation of the shared multitask network (CPU, seeded, reproducible).

Reproducibility: `torch.manual_seed(seed)` before building fresh heads, `fit` shuffles with a
generator seeded from `seed`, and the run uses a fixed number of intra-op threads
(TRAINER_THREADS), so the same data, seed and thread count give bit-identical weights
(`state_dict_sha256`), which a unit test checks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from longtail import predictions as predictions_mod
from longtail.common.v1 import common_pb2 as C
from longtail.model import fitting
from longtail.model.network import LAYERS_PER_BLOCK, MultiTaskNet
from longtail.tasks import TaskSpec

from trainer.data import Split


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def build_model(tasks: Sequence[TaskSpec], base: MultiTaskNet | None, seed: int, from_scratch: bool = False, channels: Sequence[int] | None = None, branch_blocks: int = 0) -> tuple[MultiTaskNet, list[str]]:
    """A network with a head per task. From `base` where the architecture allows: every tensor
    whose name and shape match is copied (backbone, unchanged heads); a head that is new or
    whose declaration changed starts fresh. A task the base has keeps its branch (`branch_blocks`
    is the network's, not the declaration's); a task new to the network gets a branch of
    `branch_blocks` blocks, its trunk starting from the base's blocks. Returns (model, names of the
    fresh heads)."""
    torch.manual_seed(seed)
    base_specs = {t.name: t for t in base.tasks} if base is not None and not from_scratch else {}
    tasks = [_with_branch(t, base_specs.get(t.name), branch_blocks) for t in tasks]
    chans = tuple(channels) if channels else (base.channels if base is not None and not from_scratch else (16, 32, 48, 64))
    model = MultiTaskNet(list(tasks), chans, base.camera_hfov_deg if base is not None else 60.0)
    if base is None or from_scratch:
        return model, [t.name for t in tasks]
    own = model.state_dict()
    theirs = base.state_dict()
    copied = {k: v for k, v in theirs.items() if k in own and own[k].shape == v.shape}
    own.update(copied)
    fresh = []
    for t in tasks:
        keys = [k for k in own if k.startswith(f"heads.{t.name}.")]
        if base_specs.get(t.name) != t or not all(k in copied for k in keys):
            fresh.append(t.name)
            if t.branch_blocks:  # the branch starts as a copy of the shared blocks it replaces
                first = LAYERS_PER_BLOCK * (len(chans) - t.branch_blocks)
                for k, v in theirs.items():
                    layer, _, rest = k.removeprefix("backbone.").partition(".")
                    if k.startswith("backbone.") and int(layer) >= first:
                        own[f"heads.{t.name}.trunk.{int(layer) - first}.{rest}"] = v.clone()
    model.load_state_dict(own)
    return model, fresh


def _with_branch(declared: TaskSpec, in_base: TaskSpec | None, branch_blocks: int) -> TaskSpec:
    """The declaration with the network's branch: the base's when it has this very task, else
    `branch_blocks` (or the declaration's own) for a head that starts fresh."""
    if in_base is not None and dataclasses.replace(in_base, branch_blocks=declared.branch_blocks) == declared:
        return in_base
    return dataclasses.replace(declared, branch_blocks=branch_blocks or declared.branch_blocks)


def train(
    model: MultiTaskNet,
    data: Split,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    only_heads: Sequence[str] = (),
    resume: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    device: torch.device | None = None,
) -> list[dict]:
    """`only_heads`: train these heads alone; the backbone and the other heads (weights and batch-norm
    statistics) come out exactly as they went in, so no other task's output can move. `resume`,
    `on_checkpoint`: per-epoch checkpoints (`fitting.fit`). Under an initialised process group of
    several processes this is data-parallel training (`fitting.fit`, `trainer.train_job`)."""
    targets = fitting.encode_targets(model.tasks, data.annotations)
    return train_encoded(model, data.images, targets, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, on_step=on_step, on_epoch=on_epoch, only_heads=only_heads, resume=resume, on_checkpoint=on_checkpoint, device=device)


def train_encoded(
    model: MultiTaskNet,
    images: np.ndarray | torch.Tensor,
    targets: Mapping[str, Mapping[str, torch.Tensor]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    only_heads: Sequence[str] = (),
    resume: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    device: torch.device | None = None,
) -> list[dict]:
    """`train` on targets already encoded (`fitting.encode_targets`): what a training job receives."""
    with _only(model, only_heads):
        return fitting.fit(model, images, targets, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, on_epoch=on_epoch, on_step=on_step, train_heads=only_heads, resume=resume, on_checkpoint=on_checkpoint, device=device)


@contextlib.contextmanager
def _only(model: MultiTaskNet, heads: Sequence[str]):
    """Within: only `heads` learn (nothing is frozen when empty); after: everything else restored."""
    if not heads:
        yield
        return
    unknown = set(heads) - {t.name for t in model.tasks}
    if unknown:
        raise ValueError(f"train_heads: no such head(s) {', '.join(sorted(unknown))}")
    trained = tuple(f"heads.{h}." for h in heads)
    frozen = {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith(trained)}
    params = [p for name, p in model.named_parameters() if not name.startswith(trained)]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
        model.load_state_dict(frozen, strict=False)


def evaluate(model: MultiTaskNet, data: Split, prefix: str = "val") -> dict[str, float]:
    """Metrics of `model` on a labelled split, `<prefix>/<task>/<metric>`:

    - detection: accuracy of presence >= 0.5 vs "an object is labelled", recall, false positive
      rate, mean IoU of detected boxes, accuracy per attribute (on detected objects);
    - classification: accuracy, accuracy per attribute;
    - landmark: visibility accuracy, mean absolute position error of visible keypoints;
    - `<prefix>/loss`: the training loss on the split.
    """
    out: dict[str, float] = {f"{prefix}/samples": float(len(data))}
    if not len(data):
        return out
    with torch.no_grad():
        model.eval()
        targets = fitting.encode_targets(model.tasks, data.annotations)
        losses = []
        for i in range(0, len(data), 256):
            idx = torch.arange(i, min(i + 256, len(data)))
            raw = model(torch.as_tensor(data.images[i : i + 256]))
            loss, _ = fitting.compute_loss(model.tasks, raw, fitting._index_targets(targets, idx))
            losses.append(float(loss) * len(idx))
        out[f"{prefix}/loss"] = sum(losses) / len(data)
    preds = model.predict(data.images)
    for t in model.tasks:
        key = f"{prefix}/{t.name}"
        labelled = [(p[t.name], a[t.name]) for p, a in zip(preds, data.annotations) if t.name in a]
        out[f"{key}/labelled"] = float(len(labelled))
        if not labelled:
            continue
        attr_ok: dict[str, list[bool]] = {}
        if t.prototype == "detection":
            tp = fn = fp = tn = 0
            ious = []
            for p, objs in labelled:
                objs = [o for o in objs if o["cls"] in t.classes] if objs and isinstance(objs[0], Mapping) else [{"cls": o.cls, "box": tuple(o.box), "attributes": dict(o.attributes)} for o in (objs or []) if o.cls in t.classes]
                present = bool(objs)
                said = p["presence"] >= 0.5
                tp += present and said
                fn += present and not said
                fp += said and not present
                tn += not said and not present
                if present and said:
                    best = max(objs, key=lambda o: (o["box"][2] - o["box"][0]) * (o["box"][3] - o["box"][1]))
                    ious.append(predictions_mod.box_iou(p["box"], best["box"]))
                    for k, v in (best.get("attributes") or {}).items():
                        if k in t.attributes and v in t.attributes[k]:
                            attr_ok.setdefault(k, []).append(p["attributes"][k] == v)
            out[f"{key}/accuracy"] = (tp + tn) / len(labelled)
            out[f"{key}/recall"] = tp / (tp + fn) if tp + fn else math.nan
            out[f"{key}/false_positive_rate"] = fp / (fp + tn) if fp + tn else math.nan
            out[f"{key}/iou"] = float(np.mean(ious)) if ious else math.nan
        elif t.prototype == "classification":
            ok = []
            for p, a in labelled:
                cls = a["cls"] if isinstance(a, Mapping) else a
                ok.append(p["cls"] == cls)
                for k, v in (a.get("attributes", {}) if isinstance(a, Mapping) else {}).items():
                    if k in t.attributes and v in t.attributes[k]:
                        attr_ok.setdefault(k, []).append(p["attributes"][k] == v)
            out[f"{key}/accuracy"] = float(np.mean(ok))
        else:
            vis_ok, err = [], []
            for p, a in labelled:
                got = {name: (x, y, v) for name, x, y, v in p["keypoints"]}
                for name, (x, y, vis) in a.items():
                    if name in got:
                        vis_ok.append((got[name][2] >= 0.5) == bool(vis))
                        if vis:
                            err.append(abs(got[name][0] - x) + abs(got[name][1] - y))
            out[f"{key}/visibility_accuracy"] = float(np.mean(vis_ok)) if vis_ok else math.nan
            out[f"{key}/keypoint_error"] = float(np.mean(err)) if err else math.nan
        for k, v in attr_ok.items():
            out[f"{key}/attr:{k}"] = float(np.mean(v))
    return {k: v for k, v in out.items() if not (isinstance(v, float) and math.isnan(v))}


def task_predictions(model, images: np.ndarray, tasks: Sequence[str] = ()) -> list[dict[str, C.TaskPrediction]]:
    """Per image, {task: TaskPrediction} exactly as the inference service would report it (so a
    suite judges the candidate the way it will judge the served version)."""
    return [predictions_mod.predictions(model.tasks, p, tasks) for p in model.predict(images)]
