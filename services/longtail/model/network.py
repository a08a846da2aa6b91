"""The shared multitask perception network: one small CNN backbone, one head per declared task.

Tasks are instances of prototypes (`longtail.tasks.TaskSpec`); declaring a task adds its head with no new code:

- classification: class logits + one categorical head per attribute;
- detection: the most salient instance (largest box) of the task's classes: a presence logit, a
  box (centre/size, sigmoid), class logits when there are several classes, and one categorical
  head per attribute of that instance;
- landmark: (x, y) and a visibility logit per keypoint.

The same definition runs everywhere: the bootstrap model (fleet_sim.bootstrap), the trainer, the
cars (shadow mode) and inference. The network takes raw camera frames (uint8 [N, H, W, 3]) and
returns raw head outputs (`Dict[task, Dict[output, Tensor]]`); `longtail.model.postprocess` turns
them into probabilities, boxes, ranges and bearings, and `longtail.predictions.to_detections` into
`common.v1.Detection`s. Training is in `longtail.model.fitting`, the TorchScript archives in
`longtail.model.torchscript`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from longtail.common.v1 import common_pb2
from longtail.model.postprocess import predict_with
from longtail.predictions import to_detections
from longtail.tasks import TaskSpec, tasks_from_dicts

LAYERS_PER_BLOCK = 4  # conv3x3, batch norm, ReLU, max pool


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
            out[self.names[i]] = y[:, self.starts[i] : self.ends[i]]
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
            # To mypy a ModuleDict holds nn.Module (TorchScript knows each Head; it has no cast(), and
            # takes a type-ignore comment only at the end of a line with one error code).
            tap: int = head.tap  # type: ignore[assignment]
            out[name] = head(head.branch_features(tapped[tap]) if tap >= 0 else shared)  # type: ignore[operator]
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
