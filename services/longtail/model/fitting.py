"""Training the network: annotations -> target tensors (`encode_targets`), the masked multitask
loss (`compute_loss`) and the optimisation loop (`fit`, Adam with a one-cycle schedule,
deterministic for a seed, resumable from per-epoch checkpoints, data-parallel under
torch.distributed: `distributed`, `shard`). The trainer service (`trainer.training`), its
distributed job (`trainer.train_job`) and the bootstrap model (`fleet_sim.bootstrap`) all train
through here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from longtail.model.network import MultiTaskNet
from longtail.tasks import TaskSpec

IGNORE = -100


def _obj_fields(obj: Any) -> tuple[str, tuple[float, float, float, float], Mapping[str, str]]:
    """(cls, box, attributes) of a Detection proto, GroundTruthObject-like or dict."""
    if isinstance(obj, Mapping):
        box = obj["box"]
        if isinstance(box, Mapping):
            box = (box["x_min"], box["y_min"], box["x_max"], box["y_max"])
        return obj["cls"], tuple(box), obj.get("attributes", {}) or {}
    box = obj.box
    if not isinstance(box, tuple | list):
        box = (box.x_min, box.y_min, box.x_max, box.y_max)
    return obj.cls, tuple(box), dict(obj.attributes)


def encode_targets(tasks: Sequence[TaskSpec], annotations: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, torch.Tensor]]:
    """Per-image annotations -> target tensors. `annotations[i][task]` is:

    - detection: a list of objects (Detection protos, ground-truth objects or dicts with cls,
      box (x_min, y_min, x_max, y_max) and attributes); the largest box of the task's classes is
      the target; an empty list means "nothing there";
    - classification: a class name, or {"cls": ..., "attributes": {...}};
    - landmark: {keypoint name: (x, y, visible)};

    A task missing from an image's dict (or None) is unlabelled there and adds no loss; so are
    attribute values outside the task's declared values.
    """
    n = len(annotations)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for t in tasks:
        tg: dict[str, torch.Tensor] = {"mask": torch.zeros(n)}
        attr = {k: torch.full((n,), IGNORE, dtype=torch.long) for k in t.attributes}
        if t.prototype in ("detection", "classification"):
            tg["class"] = torch.full((n,), IGNORE, dtype=torch.long)
        if t.prototype == "detection":
            tg["presence"] = torch.zeros(n)
            tg["box"] = torch.zeros(n, 4)
            tg["box_mask"] = torch.zeros(n)
        if t.prototype == "landmark":
            tg["keypoints"] = torch.zeros(n, 2 * len(t.keypoints))
            tg["visible"] = torch.zeros(n, len(t.keypoints))
        for i, ann in enumerate(annotations):
            value = ann.get(t.name) if ann is not None else None
            if value is None:
                continue
            tg["mask"][i] = 1.0
            attributes: Mapping[str, str] = {}
            if t.prototype == "detection":
                best, best_area = None, -1.0
                for obj in value:
                    cls, box, a = _obj_fields(obj)
                    if cls not in t.classes:
                        continue
                    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
                    if area > best_area:
                        best, best_area = (cls, box, a), area
                if best is None:
                    continue
                cls, box, attributes = best
                tg["presence"][i] = 1.0
                tg["box"][i] = torch.tensor([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[2] - box[0], box[3] - box[1]])
                tg["box_mask"][i] = 1.0
                tg["class"][i] = t.classes.index(cls)
            elif t.prototype == "classification":
                cls = value["cls"] if isinstance(value, Mapping) else value
                attributes = value.get("attributes", {}) if isinstance(value, Mapping) else {}
                if cls in t.classes:
                    tg["class"][i] = t.classes.index(cls)
            else:
                for j, name in enumerate(t.keypoints):
                    if name in value:
                        x, y, vis = value[name]
                        tg["keypoints"][i, 2 * j : 2 * j + 2] = torch.tensor([x, y])
                        tg["visible"][i, j] = float(bool(vis))
            for k, values in t.attributes.items():
                v = attributes.get(k)
                if v in values:
                    attr[k][i] = values.index(v)
        for k, labels in attr.items():
            tg[f"attr:{k}"] = labels
        out[t.name] = tg
    return out


def _index_targets(targets: Mapping[str, Mapping[str, torch.Tensor]], idx: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    return {t: {k: v[idx] for k, v in tg.items()} for t, tg in targets.items()}


def compute_loss(tasks: Sequence[TaskSpec], raw: Mapping[str, Mapping[str, torch.Tensor]], targets: Mapping[str, Mapping[str, torch.Tensor]], box_weight: float = 5.0) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over tasks of the masked losses; returns (total, {"<task>/<part>": value})."""
    total = torch.zeros(())
    parts: dict[str, float] = {}

    def add(name: str, value: torch.Tensor) -> None:
        nonlocal total
        total = total + value
        parts[name] = float(value.detach())

    for t in tasks:
        out, tg = raw[t.name], targets[t.name]
        mask = tg["mask"]
        if mask.sum() == 0:
            continue
        if t.prototype == "detection":
            bce = F.binary_cross_entropy_with_logits(out["presence"][:, 0], tg["presence"], reduction="none")
            add(f"{t.name}/presence", (bce * mask).sum() / mask.sum().clamp(min=1))
            bm = tg["box_mask"]
            if bm.sum() > 0:
                l1 = F.smooth_l1_loss(torch.sigmoid(out["box"]), tg["box"], reduction="none", beta=0.02).sum(1)
                add(f"{t.name}/box", box_weight * (l1 * bm).sum() / bm.sum())
        if "logits" in out and (tg["class"] != IGNORE).any():
            add(f"{t.name}/class", F.cross_entropy(out["logits"], tg["class"], ignore_index=IGNORE))
        if t.prototype == "landmark":
            vis = tg["visible"] * mask[:, None]
            add(f"{t.name}/visible", (F.binary_cross_entropy_with_logits(out["visible"], tg["visible"], reduction="none") * mask[:, None]).sum() / mask.sum().clamp(min=1) / len(t.keypoints))
            if vis.sum() > 0:
                xy = F.smooth_l1_loss(torch.sigmoid(out["keypoints"]), tg["keypoints"], reduction="none", beta=0.02)
                add(f"{t.name}/keypoints", box_weight * (xy * vis.repeat_interleave(2, dim=1)).sum() / vis.sum())
        for k in t.attributes:
            y = tg[f"attr:{k}"]
            if (y != IGNORE).any():
                add(f"{t.name}/attr:{k}", 0.5 * F.cross_entropy(out[f"attr:{k}"], y, ignore_index=IGNORE))
    return total, parts


# ------------------------------------------------------------------------------------------
# The optimisation loop, in one process or under torch.distributed (DDP)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Distributed:
    """This process's place in an initialised process group of more than one process."""

    rank: int
    world_size: int
    device: torch.device  # cuda:<current device> with NCCL, else the CPU (gloo)


def distributed() -> Distributed | None:
    """The process group `fit` trains in: None when torch.distributed is not initialised or has one
    process (then `fit` is the single-process loop, bit for bit)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    return Distributed(dist.get_rank(), dist.get_world_size(), device)


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank `rank`'s share of one global batch (indices into the data set): contiguous slices in
    rank order whose sizes differ by at most one, so the shares of ranks 0..world_size-1,
    concatenated, are exactly the global batch. Every rank draws the same permutation from the
    same seed, so no data moves between processes."""
    return torch.tensor_split(batch, world_size)[rank]


class _StepLoss(nn.Module):
    """The network and its loss as one module. Under DDP the wrapped module's output is the loss
    itself, so `find_unused_parameters` sees exactly the parameters the loss reached: a head whose
    task has no label in a rank's shard (or that the run does not train) is marked ready instead of
    leaving DDP waiting for its gradient, and a parameter no rank used keeps no gradient (Adam
    skips it, as in one process)."""

    def __init__(self, model: MultiTaskNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, targets: Mapping[str, Mapping[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, float]]:
        raw = self.model(x)
        loss, parts = compute_loss(self.model.tasks, raw, targets)
        if not loss.requires_grad:  # nothing labelled in this batch (or shard): a zero gradient, so every rank takes part in the all-reduce
            loss = sum((o.sum() for out in raw.values() for o in out.values()), torch.zeros(())) * 0.0
        return loss, parts


def _to(targets: Mapping[str, Mapping[str, torch.Tensor]], device: torch.device) -> dict[str, dict[str, torch.Tensor]]:
    return {t: {k: v.to(device, non_blocking=True) for k, v in tg.items()} for t, tg in targets.items()}


def _epoch_means(sums: dict[str, float], count: int, ctx: Distributed | None) -> dict[str, float]:
    """Mean loss parts of an epoch; under DDP the mean over every rank's steps (the same on every rank)."""
    if ctx is None:
        return {k: v / max(count, 1) for k, v in sums.items()}
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, (sums, count))
    total: dict[str, float] = {}
    for rank_sums, _ in gathered:
        for k, v in rank_sums.items():
            total[k] = total.get(k, 0.0) + v
    steps = sum(c for _, c in gathered)
    return {k: v / max(steps, 1) for k, v in total.items()}


def fit(
    model: MultiTaskNet,
    images: np.ndarray | torch.Tensor,
    targets: Mapping[str, Mapping[str, torch.Tensor]],
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    train_heads: Sequence[str] = (),
    resume: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    device: torch.device | None = None,
) -> list[dict[str, float]]:
    """Train `model` in place (Adam, one-cycle-ish cosine schedule), deterministic for a seed on a
    fixed thread count. Returns the mean loss parts per epoch. `on_step(done, total)` is called
    after every optimizer step (progress bars). With `train_heads` only those heads are in training
    mode: the rest of the network normalises with its running statistics, as it will at inference,
    so the heads learn on the features they will see.

    Checkpoints: `on_checkpoint(state)` is called after every epoch with everything needed to go on
    (`epoch` finished, `model`, `optimizer`, `scheduler`, the shuffling `generator`'s state,
    `torch_rng`, `history`); `fit(..., resume=state)` continues from there, bit for bit what the
    uninterrupted run would have done (same data, seed, batch size and thread count).

    Under torch.distributed (`distributed()`: a process group of more than one process) the model
    is wrapped in DistributedDataParallel (gloo on the CPU, NCCL on CUDA). Every rank draws the same
    seeded permutation, and each global batch of `batch_size` is split across the ranks (`shard`),
    so the global batch, the number of steps and the LR schedule are those of one process; a global
    batch with fewer than two frames per rank is skipped (one process skips a batch of one).
    Gradients are averaged over the ranks: the mean of the shards' masked losses, which equals the
    single-process loss when each shard holds the same number of labels per task and is close
    otherwise. Batch norm is per rank (each rank normalises with its shard's statistics;
    SyncBatchNorm has no CPU implementation); the running statistics are rank 0's (DDP broadcasts
    buffers before every forward, and `fit` once more after every epoch), so every rank ends with
    identical weights. The returned losses are means over every rank's steps.

    `device` (one process): where to train (`longtail.model.device.preferred()`: CUDA when
    present); the model goes back to where it was afterwards. Under DDP the process group decides."""
    x = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    n = x.shape[0]
    ctx = distributed()
    home = next(model.parameters()).device
    device = ctx.device if ctx is not None else (device or home)
    if device != home:
        model.to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    per_epoch = math.ceil(n / batch_size)
    steps = epochs * per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    history: list[dict[str, float]] = []
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        sched.load_state_dict(resume["scheduler"])
        gen.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        history = [dict(h) for h in resume["history"]]
        if len(history) != resume["epoch"]:
            raise ValueError(f"checkpoint: {len(history)} epochs of history for epoch {resume['epoch']}")
    model.train()
    if train_heads:
        model.eval()
        for name in train_heads:
            model.heads[name].train()
    step: nn.Module = _StepLoss(model)
    if ctx is not None:
        step = DistributedDataParallel(step, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
    min_batch = 2 * (ctx.world_size if ctx is not None else 1)  # two frames per rank (batch-norm statistics)
    for epoch in range(len(history), epochs):
        perm = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        count = 0
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            if idx.numel() < min_batch:
                continue
            if ctx is not None:
                idx = shard(idx, ctx.rank, ctx.world_size)
            xb, tb = x[idx], _index_targets(targets, idx)
            if device.type != "cpu":
                xb, tb = xb.to(device, non_blocking=True), _to(tb, device)
            loss, parts = step(xb, tb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done_steps = len(history) * per_epoch + i // batch_size + 1
            if on_step is not None:
                on_step(done_steps, steps)
            parts["total"] = float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        means = _epoch_means(sums, count, ctx)
        history.append(means)
        if ctx is not None:
            for b in model.buffers():  # rank 0's batch-norm statistics on every rank
                dist.broadcast(b, src=0)
        if on_checkpoint is not None:
            on_checkpoint(
                {"epoch": epoch + 1, "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "history": [dict(h) for h in history]}
            )
        if on_epoch is not None:
            on_epoch(epoch, means)
    model.eval()
    if device != home:
        model.to(home)
    return history
