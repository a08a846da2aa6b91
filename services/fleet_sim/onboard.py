"""The models a simulated car runs, as the gateway beams them down.

- production: the perception model whose detections go into telemetry (`Frame.detections`);
- candidate: a version in shadow mode beside production (`Frame.shadow_detections`); where the two
  disagree the car reports a `ShadowDisagreement` (`longtail.shadow.differences`);
- trigger detectors: small models whose score for the frame goes into `Frame.trigger_scores`
  under "<name>@<version>" and "<name>" (the newest version), which `score(...)` reads.

Every car of a process shares one `ModelShelf`: a version is fetched once (from the object store
or inline), checked against the announced sha256 and size, and loaded as TorchScript (what a car
runs: no Python network code needed). A download that does not match is refused, and the car
keeps what it runs.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from longtail import shadow
from longtail.common.v1 import common_pb2
from longtail.fleet.v1 import fleet_pb2
from longtail.log import get_logger
from longtail.model import torchscript
from longtail.tasks import TaskSpec

log = get_logger(__name__)

FLUSH_EVERY = 200  # agreeing frames after which a car reports how many it compared


class ModelRejected(Exception):
    pass


class OnboardModel(Protocol):
    """A model a car runs (a loaded TorchScript archive, or the bootstrap network itself)."""

    @property
    def tasks(self) -> Sequence[TaskSpec]: ...

    def predict(self, images: np.ndarray) -> list[dict[str, Any]]: ...  # per image {task: output}

    def __hash__(self) -> int: ...  # _shared_tasks caches by model


def ref_key(ref: common_pb2.ModelRef) -> tuple[str, int]:
    return ref.name, int(ref.version)


class ModelShelf:
    """Loaded model versions by (name, version, sha256), shared by the cars of one process."""

    def __init__(self, store=None, device: torch.device | None = None) -> None:
        self.store = store  # longtail.storage.ObjectStore, for s3:// URIs
        self.device = device or torch.device("cpu")  # where beamed-down models run (model.device.preferred(): CUDA when present)
        self.models: dict[tuple[str, int, str], object] = {}
        self._loading: dict[tuple[str, int, str], asyncio.Task] = {}

    async def get(self, ref: common_pb2.ModelRef, uri: str, sha256: str, size_bytes: int, weights: bytes = b""):
        key = (*ref_key(ref), sha256)
        if key in self.models:
            return self.models[key]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(asyncio.to_thread(self._fetch_and_load, uri, sha256, size_bytes, weights))
            self._loading[key] = task
        try:
            model = await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(key, None)
        self.models[key] = model
        return model

    def _fetch_and_load(self, uri: str, sha256: str, size_bytes: int, weights: bytes):
        data = weights or self._fetch(uri)
        if size_bytes and len(data) != size_bytes:
            raise ModelRejected(f"{len(data)} bytes, announced {size_bytes}")
        digest = hashlib.sha256(data).hexdigest()
        if sha256 and digest != sha256:
            raise ModelRejected(f"sha256 {digest[:12]}... does not match the announced {sha256[:12]}...")
        try:
            return torchscript.load_scripted(data, optimize=True, device=self.device)  # a car only infers: frozen, batch norm folded
        except Exception as exc:  # noqa: BLE001 - any unloadable archive is refused the same way
            raise ModelRejected(f"not a loadable TorchScript model: {type(exc).__name__}: {exc}") from exc

    def _fetch(self, uri: str) -> bytes:
        if not uri.startswith("s3://"):
            raise ModelRejected(f"no weights inline and {uri!r} is not an s3:// URI")
        if self.store is None:
            raise ModelRejected("no object store configured to fetch " + uri)
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return self.store.get(key, bucket)


@dataclass
class Installed:
    ref: common_pb2.ModelRef
    model: OnboardModel


@dataclass
class CarModels:
    production: Installed
    candidate: Installed | None = None
    detectors: dict[str, Installed] = field(default_factory=dict)  # detector name -> newest version
    compared: int = 0  # frames compared with the candidate since the last report

    def flush(self) -> fleet_pb2.ShadowDisagreement | None:
        """A report of the frames compared without disagreement since the last one (if any)."""
        if self.candidate is None or self.compared == 0:
            return None
        report = fleet_pb2.ShadowDisagreement(production=self.production.ref, candidate=self.candidate.ref, frames_compared=self.compared)
        self.compared = 0
        return report

    def compare(self, frame: fleet_pb2.Frame, prod: dict, cand: dict) -> list[fleet_pb2.ShadowDisagreement]:
        """Reports for one frame: one per task the models disagree on, or a periodic count."""
        assert self.candidate is not None  # frames are compared only while a candidate is installed
        self.compared += 1
        shared = _shared_tasks(self.production.model, self.candidate.model)
        by_task: dict[str, list[fleet_pb2.ShadowDifference]] = {}
        for task, diff in shadow.differences(shared, prod, cand):
            by_task.setdefault(task, []).append(diff)
        if not by_task:
            report = self.flush() if self.compared >= FLUSH_EVERY else None
            return [report] if report is not None else []
        reports = []
        for task, diffs in by_task.items():
            reports.append(fleet_pb2.ShadowDisagreement(frame_id=frame.frame_id, captured_at=frame.captured_at, production=self.production.ref, candidate=self.candidate.ref, task=task, differences=diffs, frames_compared=self.compared))
            self.compared = 0  # only the first message of a frame counts it
        return reports


@functools.lru_cache(maxsize=16)
def _shared_tasks(production, candidate) -> list:
    """The tasks compared for a pair of loaded models (every frame asks; models are few)."""
    return shadow.shared_tasks(production.tasks, candidate.tasks)


def run_grouped(images: np.ndarray, installed: list[Installed | None]) -> list[dict | None]:
    """Each car's predictions from the model it has installed: one batched forward pass per
    distinct model version (cars of a fleet mostly run the same one)."""
    out: list[dict | None] = [None] * len(installed)
    groups: dict[tuple[str, int], list[int]] = {}
    models: dict[tuple[str, int], OnboardModel] = {}
    for i, inst in enumerate(installed):
        if inst is not None:
            groups.setdefault(ref_key(inst.ref), []).append(i)
            models.setdefault(ref_key(inst.ref), inst.model)
    for key, idx in groups.items():
        model = models[key]
        for i, prediction in zip(idx, model.predict(images[idx])):
            out[i] = prediction
    return out


def detector_score(model, prediction: dict) -> float:
    """P(present) of a trigger detector (a one-task classifier with classes absent/present, see
    trainer.detector)."""
    return float(prediction[model.tasks[0].name]["probabilities"]["present"])
