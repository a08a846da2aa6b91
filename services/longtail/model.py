"""The shared multitask perception network: one small CNN backbone, one head per declared task.

Tasks are instances of prototypes (`longtail.tasks.TaskSpec`); declaring a task adds its head with no new code:

- classification: class logits + one categorical head per attribute;
- detection: the most salient instance (largest box) of the task's classes: a presence logit, a
  box (centre/size, sigmoid), class logits when there are several classes, and one categorical
  head per attribute of that instance;
- landmark: (x, y) and a visibility logit per keypoint.

The same definition runs everywhere: the bootstrap model (fleet_sim.bootstrap), the trainer, the
cars (shadow mode) and inference. The network takes raw camera frames (uint8 [N, H, W, 3]) and
returns raw head outputs (`Dict[task, Dict[output, Tensor]]`); `postprocess` turns them into
probabilities, boxes, ranges and bearings, and `longtail.predictions.to_detections` into `common.v1.Detection`s.

Weights travel as TorchScript (`save`/`to_bytes`) with the model config (tasks, channels, camera)
embedded as the extra file `longtail.json`; `load`/`from_bytes` rebuild the eager model,
`load_scripted` gives a runner that needs only torch. `state_dict_sha256` identifies weights
independently of the file encoding.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from longtail.common.v1 import common_pb2
from longtail.predictions import to_detections
from longtail.tasks import TaskSpec, tasks_from_dicts

CONFIG_FILE = "longtail.json"
IGNORE = -100
LAYERS_PER_BLOCK = 4  # conv3x3, batch norm, ReLU, max pool


# ------------------------------------------------------------------------------------------
# Network
# ------------------------------------------------------------------------------------------


class Head(nn.Module):
    """A prototype-agnostic head: a hidden layer and one linear map sliced into named outputs.

    A head with a branch (`TaskSpec.branch_blocks` > 0) reads the backbone's feature map `tap`
    blocks deep and runs its own copy of the remaining blocks (`trunk`), so training it moves no
    other task's output; an unbranched head reads the shared features (`tap` -1, empty trunk)."""

    def __init__(self, in_features: int, hidden: int, outputs: list[tuple[str, int]], trunk: nn.Sequential | None = None, tap: int = -1) -> None:
        super().__init__()
        self.trunk = trunk if trunk is not None else nn.Sequential()
        self.tap = tap
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, sum(w for _, w in outputs))
        self.names = [n for n, _ in outputs]
        starts, ends, pos = [], [], 0
        for _, w in outputs:
            starts.append(pos)
            pos += w
            ends.append(pos)
        self.starts = starts
        self.ends = ends

    def branch_features(self, tapped: torch.Tensor) -> torch.Tensor:
        return pooled(self.trunk(tapped))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = self.out(F.relu(self.hidden(x)))
        out: dict[str, torch.Tensor] = {}
        for i in range(len(self.names)):
            out[self.names[i]] = y[:, self.starts[i]:self.ends[i]]
        return out


def pooled(f: torch.Tensor) -> torch.Tensor:
    """A feature map as a head's input: 4x4 average-pooled cells and the global max, flattened."""
    return torch.cat([torch.flatten(F.adaptive_avg_pool2d(f, 4), 1), torch.amax(f, dim=(2, 3))], dim=1)


def _blocks(channels: Sequence[int], c_in: int = 3) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c in channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        c_in = c
    return layers


class MultiTaskNet(nn.Module):
    """Shared conv backbone (conv3x3-BN-ReLU-maxpool blocks) -> [4x4 spatial features, global max
    pool] -> one `Head` per task. `forward` takes uint8 (or float 0..255) NHWC frames."""

    __annotations__ = {"taps": list[int]}  # TorchScript needs the element type when the list is empty (and no postponed string)

    def __init__(self, tasks: Sequence[TaskSpec], channels: Sequence[int] = (16, 32, 48, 64), camera_hfov_deg: float = 60.0) -> None:
        super().__init__()
        tasks = list(tasks)
        if not tasks:
            raise ValueError("at least one task")
        if len({t.name for t in tasks}) != len(tasks):
            raise ValueError("duplicate task names")
        self.tasks = tasks  # plain Python attribute: not used by forward, not part of TorchScript
        self.channels = tuple(int(c) for c in channels)
        self.camera_hfov_deg = float(camera_hfov_deg)
        self.backbone = nn.Sequential(*_blocks(self.channels))
        features = self.channels[-1] * 17
        heads = {}
        for t in tasks:
            if t.branch_blocks > len(self.channels):
                raise ValueError(f"task {t.name}: branch_blocks {t.branch_blocks} > the backbone's {len(self.channels)} blocks")
            tap = len(self.channels) - t.branch_blocks
            trunk = nn.Sequential(*_blocks(self.channels[tap:], self.channels[tap - 1] if tap else 3)) if t.branch_blocks else None
            heads[t.name] = Head(features, t.hidden, t.outputs(), trunk, LAYERS_PER_BLOCK * tap if t.branch_blocks else -1)
        self.heads = nn.ModuleDict(heads)
        self.taps = sorted({h.tap for h in heads.values() if h.tap >= 0})  # backbone layer indices whose input a branch reads

    @torch.jit.unused
    def config(self) -> dict:
        return {"tasks": [t.to_dict() for t in self.tasks], "channels": list(self.channels), "camera_hfov_deg": self.camera_hfov_deg}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MultiTaskNet:
        return cls(tasks_from_dicts(config["tasks"]), config.get("channels", (16, 32, 48, 64)), config.get("camera_hfov_deg", 60.0))

    def forward(self, x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        f = x.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 63.75) - 2.0  # 0..255 -> -2..2
        tapped: dict[int, torch.Tensor] = {}
        i = 0
        for layer in self.backbone:
            if i in self.taps:
                tapped[i] = f
            f = layer(f)
            i += 1
        shared = pooled(f)
        out: dict[str, dict[str, torch.Tensor]] = {}
        for name, head in self.heads.items():
            out[name] = head(head.branch_features(tapped[head.tap]) if head.tap >= 0 else shared)
        return out

    # -- convenience (eager only) ------------------------------------------------------------
    @torch.jit.unused
    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> list[dict[str, dict]]:
        return predict_with(self, self.tasks, images, self.camera_hfov_deg, batch_size)

    @torch.jit.unused
    def detect(self, images: np.ndarray | torch.Tensor, min_confidence: float = 0.25) -> list[list[common_pb2.Detection]]:
        """`images` uint8 [N, H, W, 3] -> per image, the detections of every detection task
        (the `perception` callable of the simulated fleet)."""
        return [to_detections(p, min_confidence) for p in self.predict(images)]


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------
# Post-processing
# ------------------------------------------------------------------------------------------


def _boxes(raw: torch.Tensor) -> torch.Tensor:
    """Raw [N, 4] -> (x_min, y_min, x_max, y_max) in [0, 1]."""
    s = torch.sigmoid(raw)
    cx, cy, w, h = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1).clamp(0.0, 1.0)


def predict_with(module: Callable, tasks: Sequence[TaskSpec], images: np.ndarray | torch.Tensor, camera_hfov_deg: float = 60.0, batch_size: int = 256) -> list[dict[str, dict]]:
    """Run an eager or scripted network and post-process its outputs (see `postprocess`)."""
    x = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if x.dim() == 3:
        x = x.unsqueeze(0)
    was_training = getattr(module, "training", False)
    if hasattr(module, "eval"):
        module.eval()
    results: list[dict[str, dict]] = []
    with torch.no_grad():  # not inference_mode: TorchScript modules reject inference tensors
        for i in range(0, x.shape[0], batch_size):
            results += postprocess(tasks, module(x[i:i + batch_size]), camera_hfov_deg)
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
            d["attributes"] = {k: max(v, key=v.get) for k, v in ap.items()}
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


# ------------------------------------------------------------------------------------------
# Targets and loss
# ------------------------------------------------------------------------------------------


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
                        tg["keypoints"][i, 2 * j:2 * j + 2] = torch.tensor([x, y])
                        tg["visible"][i, j] = float(bool(vis))
            for k, values in t.attributes.items():
                v = attributes.get(k)
                if v in values:
                    attr[k][i] = values.index(v)
        for k, v in attr.items():
            tg[f"attr:{k}"] = v
        out[t.name] = tg
    return out


def _index_targets(targets: Mapping[str, Mapping[str, torch.Tensor]], idx: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    return {t: {k: v[idx] for k, v in tg.items()} for t, tg in targets.items()}


def compute_loss(tasks: Sequence[TaskSpec], raw: Mapping[str, Mapping[str, torch.Tensor]], targets: Mapping[str, Mapping[str, torch.Tensor]],
                 box_weight: float = 5.0) -> tuple[torch.Tensor, dict[str, float]]:
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


def fit(model: MultiTaskNet, images: np.ndarray | torch.Tensor, targets: Mapping[str, Mapping[str, torch.Tensor]], epochs: int = 8,
        batch_size: int = 64, lr: float = 3e-3, weight_decay: float = 1e-4, seed: int = 0,
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        on_step: Callable[[int, int], None] | None = None, train_heads: Sequence[str] = ()) -> list[dict[str, float]]:
    """Train `model` in place (Adam, one-cycle-ish cosine schedule), deterministic for a seed on a
    fixed thread count. Returns the mean loss parts per epoch. `on_step(done, total)` is called
    after every optimizer step (progress bars). With `train_heads` only those heads are in training
    mode: the rest of the network normalises with its running statistics, as it will at inference,
    so the heads learn on the features they will see."""
    x = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    n = x.shape[0]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.15)
    history = []
    model.train()
    if train_heads:
        model.eval()
        for name in train_heads:
            model.heads[name].train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        count = 0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            if idx.numel() < 2:
                continue
            raw = model(x[idx])
            loss, parts = compute_loss(model.tasks, raw, _index_targets(targets, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done_steps = len(history) * math.ceil(n / batch_size) + i // batch_size + 1
            if on_step is not None:
                on_step(done_steps, steps)
            parts["total"] = float(loss.detach())
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        means = {k: v / max(count, 1) for k, v in sums.items()}
        history.append(means)
        if on_epoch is not None:
            on_epoch(epoch, means)
    model.eval()
    return history


# ------------------------------------------------------------------------------------------
# Serialization
# ------------------------------------------------------------------------------------------


def script(model: MultiTaskNet) -> torch.jit.ScriptModule:
    was = model.training
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(model)
    model.train(was)
    return scripted


def to_bytes(model: MultiTaskNet) -> bytes:
    """TorchScript archive with the model config embedded (what `UpdateShadowModel` carries)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # attribute order defines the head layout: keep insertion order (no sort_keys)
        torch.jit.save(script(model), buf, _extra_files={CONFIG_FILE: json.dumps(model.config())})
    return buf.getvalue()


def save(model: MultiTaskNet, path: str) -> str:
    """Write the TorchScript archive to `path`; returns the file's sha256 (lowercase hex)."""
    data = to_bytes(model)
    with open(path, "wb") as fh:
        fh.write(data)
    return hashlib.sha256(data).hexdigest()


def _load_script(source: str | bytes) -> tuple[torch.jit.ScriptModule, dict]:
    extra = {CONFIG_FILE: ""}
    f = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(f, map_location="cpu", _extra_files=extra)
    cfg = extra[CONFIG_FILE]
    return module, json.loads(cfg.decode() if isinstance(cfg, bytes) else cfg)


def _eager(module: torch.jit.ScriptModule, cfg: dict) -> MultiTaskNet:
    model = MultiTaskNet.from_config(cfg)
    model.load_state_dict(module.state_dict())
    model.eval()
    return model


def load(path: str) -> MultiTaskNet:
    """Rebuild the eager model (with its tasks) from a `save`d archive."""
    return _eager(*_load_script(path))


def from_bytes(data: bytes) -> MultiTaskNet:
    return _eager(*_load_script(data))


class ScriptedModel:
    """A TorchScript archive plus its config: predicts without this module's network code."""

    def __init__(self, module: torch.jit.ScriptModule, config: dict) -> None:
        self.module = module
        self.config = config
        self.tasks = tasks_from_dicts(config["tasks"])
        self.camera_hfov_deg = float(config.get("camera_hfov_deg", 60.0))

    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> list[dict[str, dict]]:
        return predict_with(self.module, self.tasks, images, self.camera_hfov_deg, batch_size)

    def detect(self, images: np.ndarray | torch.Tensor, min_confidence: float = 0.25) -> list[list[common_pb2.Detection]]:
        return [to_detections(p, min_confidence) for p in self.predict(images)]


def load_scripted(source: str | bytes, optimize: bool = False) -> ScriptedModel:
    """Load a TorchScript archive (path or bytes) for inference only. With `optimize` the module is
    frozen (weights become constants) and optimised for inference (batch norm folded into the
    convolutions): a batched forward pass on CPU is ~3.5x faster, outputs equal within ~1e-6
    rather than bit for bit (what the simulated cars run)."""
    module, config = _load_script(source)
    if optimize:
        with warnings.catch_warnings():  # torch marks the TorchScript API deprecated; it is what cars and Triton run
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.optimize_for_inference(torch.jit.freeze(module.eval()))
    return ScriptedModel(module, config)


def state_dict_sha256(model: nn.Module) -> str:
    """sha256 over (name, dtype, shape, bytes) of every state-dict entry in order: identifies the
    weights regardless of how they were serialized."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()
