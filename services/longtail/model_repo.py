"""The Triton model repository in the object store: written by the trainer, served by Triton,
read by inference (and by the gateway, which beams `model.pt` to the cars).

Layout (Triton's own; the bucket's `models/` prefix is the repository root Triton is given):

    models/<name>/config.pbtxt               Triton model config, the same for every version
    models/<name>/<version>/model.pt         TorchScript archive (`longtail.model.torchscript.to_bytes`): what cars load
    models/<name>/<version>/model.py         Triton Python-backend code that runs model.pt (`BACKEND_MODEL_PY`)
    models/<name>/<version>/manifest.json    tasks, output layout, parent, metrics, datasets, files + sha256

`manifest.json` is written last: a version without one is incomplete (a publisher died half-way)
and is neither listed nor loadable. Versions are immutable: publishing an existing version with
different bytes is an error.

Why one flat output tensor: a Triton config belongs to the model, not to a version, yet versions
may differ in their heads (a newly declared task adds one). So every version has the same I/O —
`images` (uint8 [N, H, W, 3]) in, `raw` (fp32 [N, K]) out, the concatenation of every head's
outputs — and the per-version layout (task, output, width) lives in its manifest. Clients split
`raw` with `split_raw` and post-process with `longtail.model.postprocess.postprocess`.

`load_version` validates a published version the way a server must before routing traffic to it:
files present, sha256 as declared, the archive loads, its tasks and output layout match the
manifest, a forward pass gives finite outputs of the declared widths. Anything else raises
`InvalidModelVersion` with a reason an operator can act on.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2
from longtail.model import torchscript
from longtail.model.network import MultiTaskNet
from longtail.storage import MODELS, ObjectStore
from longtail.tasks import TaskSpec

MANIFEST_FORMAT = 1
INPUT_NAME, OUTPUT_NAME = "images", "raw"
WEIGHTS_FILE, BACKEND_FILE, MANIFEST_FILE, CONFIG_FILE = "model.pt", "model.py", "manifest.json", "config.pbtxt"
DEFAULT_MAX_BATCH = 64
DEFAULT_QUEUE_DELAY_US = 2000  # Triton's dynamic batcher waits at most this long to fill a batch
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# The Triton Python-backend model, copied next to every version's model.pt. Needs only torch and
# numpy in Triton's Python environment (no longtail code), so a stock Triton image plus torch runs it.
BACKEND_MODEL_PY = '''"""Triton Python backend for a longtail multitask model version (written by longtail.model_repo).

Runs the TorchScript archive model.pt of this version and returns every head's raw outputs
concatenated in the order of manifest.json's "outputs" as one fp32 tensor "raw" [N, K].
"""
import json
import os
import warnings

import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        threads = config.get("parameters", {}).get("torch_threads", {}).get("string_value", "1")
        torch.set_num_threads(max(1, int(threads)))
        here = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(here, "manifest.json")) as fh:
            self.layout = [(o["task"], o["output"]) for o in json.load(fh)["outputs"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.module = torch.jit.load(os.path.join(here, "model.pt"), map_location="cpu").eval()

    def _forward(self, images):
        with torch.no_grad():
            raw = self.module(torch.from_numpy(images))
        return torch.cat([raw[t][o].float() for t, o in self.layout], dim=1).numpy()

    def execute(self, requests):
        images = [pb_utils.get_input_tensor_by_name(r, "images").as_numpy() for r in requests]
        responses = [None] * len(requests)
        # One forward pass for all requests the dynamic batcher grouped (same image size).
        by_shape = {}
        for i, x in enumerate(images):
            by_shape.setdefault(x.shape[1:], []).append(i)
        for indices in by_shape.values():
            try:
                out = self._forward(np.ascontiguousarray(np.concatenate([images[i] for i in indices])))
            except Exception as exc:  # a bad input fails its requests, not the server
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))
                continue
            start = 0
            for i in indices:
                n = images[i].shape[0]
                responses[i] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("raw", out[start:start + n])])
                start += n
        return responses
'''


class InvalidModelVersion(ValueError):
    """A model version that cannot be served; the message says why."""


# ------------------------------------------------------------------------------------------
# Keys and the Triton config
# ------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not _MODEL_NAME.match(name or ""):
        raise ValueError(f"model name {name!r} must match {_MODEL_NAME.pattern} (it is a Triton folder name)")
    return name


def config_key(name: str) -> str:
    return f"{MODELS}{name}/{CONFIG_FILE}"


def version_prefix(name: str, version: int) -> str:
    return f"{MODELS}{name}/{int(version)}/"


def file_key(name: str, version: int, filename: str) -> str:
    return version_prefix(name, version) + filename


def output_layout(tasks: Sequence[TaskSpec]) -> list[tuple[str, str, int]]:
    """(task, output, width) of every head output, in the order they are concatenated in `raw`."""
    return [(t.name, out, width) for t in tasks for out, width in t.outputs()]


def split_raw(raw: np.ndarray | torch.Tensor, layout: Sequence[tuple[str, str, int]]) -> dict[str, dict[str, torch.Tensor]]:
    """`raw` [N, K] -> {task: {output: [N, width]}} (the shape `longtail.model.postprocess.postprocess` takes)."""
    x = torch.as_tensor(np.asarray(raw, dtype=np.float32))
    total = sum(w for _, _, w in layout)
    if x.dim() != 2 or x.shape[1] != total:
        raise ValueError(f"raw output has shape {tuple(x.shape)}, the layout needs [N, {total}]")
    out: dict[str, dict[str, torch.Tensor]] = {}
    pos = 0
    for task, name, width in layout:
        out.setdefault(task, {})[name] = x[:, pos : pos + width]
        pos += width
    return out


def triton_config(name: str, max_batch_size: int = DEFAULT_MAX_BATCH, queue_delay_us: int = DEFAULT_QUEUE_DELAY_US, instances: int = 1, torch_threads: int = 1):
    """The model-level Triton config (a `ModelConfig` proto) shared by every version of `name`."""
    from tritonclient.grpc import model_config_pb2 as mc

    cfg = mc.ModelConfig(name=check_name(name), backend="python", max_batch_size=max_batch_size)
    cfg.input.add(name=INPUT_NAME, data_type=mc.TYPE_UINT8, dims=[-1, -1, 3])
    cfg.output.add(name=OUTPUT_NAME, data_type=mc.TYPE_FP32, dims=[-1])
    cfg.instance_group.add(kind=mc.ModelInstanceGroup.KIND_CPU, count=instances)
    cfg.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    cfg.parameters["torch_threads"].string_value = str(torch_threads)
    # No version_policy here: which versions are loaded is decided by the caller of load_model
    # (explicit model control, `config_json`), never by Triton picking "the latest" on its own.
    return cfg


def config_text(cfg) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(cfg)


def parse_config(text: str, name: str):
    """Parse and check a config.pbtxt: the I/O every version of this repository relies on."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    try:
        cfg = text_format.Parse(text, mc.ModelConfig())
    except text_format.ParseError as exc:
        raise InvalidModelVersion(f"{CONFIG_FILE}: {exc}") from None
    problems = []
    if cfg.name != name:
        problems.append(f"name {cfg.name!r} != folder {name!r}")
    if cfg.backend != "python":
        problems.append(f"backend {cfg.backend!r} (expected python)")
    if [(i.name, i.data_type) for i in cfg.input] != [(INPUT_NAME, mc.TYPE_UINT8)]:
        problems.append(f"inputs must be exactly {INPUT_NAME} (UINT8)")
    if [(o.name, o.data_type) for o in cfg.output] != [(OUTPUT_NAME, mc.TYPE_FP32)]:
        problems.append(f"outputs must be exactly {OUTPUT_NAME} (FP32)")
    if cfg.max_batch_size < 1:
        problems.append("max_batch_size must be >= 1")
    if problems:
        raise InvalidModelVersion(f"{CONFIG_FILE} is incompatible: " + "; ".join(problems))
    return cfg


def config_json(cfg, versions: Iterable[int]) -> str:
    """The config as JSON with `version_policy: specific(versions)`: the argument of Triton's
    load_model that decides exactly which versions are loaded."""
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2 as mc

    copy = mc.ModelConfig()
    copy.CopyFrom(cfg)
    copy.version_policy.specific.versions[:] = sorted({int(v) for v in versions})
    return json_format.MessageToJson(copy)


# ------------------------------------------------------------------------------------------
# Publishing (the trainer's side)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedVersion:
    name: str
    version: int
    prefix: str
    config_key: str
    weights_key: str
    manifest_key: str
    sha256: str
    size_bytes: int
    tasks: tuple[str, ...]
    parent: int | None
    manifest: dict = field(compare=False)


def list_versions(store: ObjectStore, name: str) -> list[int]:
    """Complete versions (with a manifest) of `name`, ascending."""
    versions = set()
    for key in store.list(f"{MODELS}{check_name(name)}/"):
        parts = key[len(MODELS) :].split("/")
        if len(parts) == 3 and parts[2] == MANIFEST_FILE and parts[1].isdigit() and int(parts[1]) > 0:
            versions.add(int(parts[1]))
    return sorted(versions)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def publish(
    store: ObjectStore,
    model: MultiTaskNet,
    name: str,
    version: int | None = None,
    *,
    parent: int | None = None,
    metrics: Mapping[str, float] | None = None,
    datasets: Sequence[Mapping[str, Any]] = (),
    run_id: str = "",
    input_size: tuple[int, int] = (64, 64),
    extra: Mapping[str, Any] | None = None,
) -> PublishedVersion:
    """Write `model` as version `version` (default: the next free one) of `name`.

    Checks the archive locally first (a model the server would refuse is never published), writes
    config.pbtxt if the repository has none, then model.pt, model.py and finally manifest.json.
    Idempotent: re-publishing identical bytes returns the existing version. The caller announces
    it (`published_event`) only after this returns.
    """
    check_name(name)
    weights = torchscript.to_bytes(model)
    tasks = list(model.tasks)
    layout = output_layout(tasks)
    _check_archive(weights, tasks, layout, input_size)
    if version is None:
        existing = list_versions(store, name)
        version = (existing[-1] + 1) if existing else 1
    if int(version) < 1:
        raise ValueError("model versions are positive integers")
    version = int(version)
    backend = BACKEND_MODEL_PY.encode()
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "parent": parent,
        "tasks": [t.to_dict() for t in tasks],
        "outputs": [{"task": t, "output": o, "width": w} for t, o, w in layout],
        "input": {"name": INPUT_NAME, "dtype": "uint8", "layout": "NHWC", "height": input_size[0], "width": input_size[1], "channels": 3},
        "camera_hfov_deg": model.camera_hfov_deg,
        "files": {WEIGHTS_FILE: {"sha256": _sha(weights), "size": len(weights)}, BACKEND_FILE: {"sha256": _sha(backend), "size": len(backend)}},
        "state_dict_sha256": torchscript.state_dict_sha256(model),
        "metrics": dict(metrics or {}),
        "datasets": [dict(d) for d in datasets],
        "run_id": run_id,
        "created_at": time.time(),
        **dict(extra or {}),
    }
    mkey = file_key(name, version, MANIFEST_FILE)
    if store.exists(mkey):
        old = json.loads(store.get(mkey))
        if old.get("state_dict_sha256") == manifest["state_dict_sha256"] and old.get("tasks") == manifest["tasks"]:
            return _published(name, version, old)
        raise ValueError(f"{name} version {version} already exists with other weights: versions are immutable")
    if not store.exists(config_key(name)):
        store.put_at(config_key(name), config_text(triton_config(name)).encode(), "text/plain")
    store.put_at(file_key(name, version, WEIGHTS_FILE), weights)
    store.put_at(file_key(name, version, BACKEND_FILE), backend, "text/x-python")
    store.put_at(mkey, json.dumps(manifest, indent=1).encode(), "application/json")  # last: the commit marker
    return _published(name, version, manifest)


def _published(name: str, version: int, manifest: Mapping[str, Any]) -> PublishedVersion:
    weights = manifest["files"][WEIGHTS_FILE]
    return PublishedVersion(
        name=name,
        version=version,
        prefix=version_prefix(name, version),
        config_key=config_key(name),
        weights_key=file_key(name, version, WEIGHTS_FILE),
        manifest_key=file_key(name, version, MANIFEST_FILE),
        sha256=weights["sha256"],
        size_bytes=int(weights["size"]),
        tasks=tuple(t["name"] for t in manifest["tasks"]),
        parent=manifest.get("parent"),
        manifest=dict(manifest),
    )


def published_event(pv: PublishedVersion, role: common_pb2.ModelRole = common_pb2.MODEL_ROLE_PRODUCTION, bucket: str = "", run_id: str = ""):
    """The `models.v1.ModelPublished` announcing `pv` (the trainer produces it on MODELS_PUBLISHED)."""
    from longtail.models.v1 import events_pb2

    event = events_pb2.ModelPublished(
        model=common_pb2.ModelRef(name=pv.name, version=pv.version),
        role=role,
        bucket=bucket,
        repository_prefix=pv.prefix,
        config_key=pv.config_key,
        weights_key=pv.weights_key,
        sha256=pv.sha256,
        size_bytes=pv.size_bytes,
        manifest_key=pv.manifest_key,
        tasks=list(pv.tasks),
        run_id=run_id or pv.manifest.get("run_id", ""),
    )
    if pv.parent:
        event.parent.CopyFrom(common_pb2.ModelRef(name=pv.name, version=int(pv.parent)))
    event.published_at.GetCurrentTime()
    return event


# ------------------------------------------------------------------------------------------
# Loading and validation (the serving side)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelVersion:
    """A validated version: what a client needs to call Triton and post-process its answer."""

    name: str
    version: int
    tasks: tuple[TaskSpec, ...]
    layout: tuple[tuple[str, str, int], ...]
    camera_hfov_deg: float
    sha256: str
    manifest: dict = field(compare=False, repr=False)
    config: Any = field(compare=False, repr=False, default=None)  # the parsed model-level config

    @property
    def ref(self) -> common_pb2.ModelRef:
        return common_pb2.ModelRef(name=self.name, version=self.version)

    def split(self, raw: np.ndarray) -> dict[str, dict[str, torch.Tensor]]:
        return split_raw(raw, self.layout)


def _check_archive(weights: bytes, tasks: Sequence[TaskSpec], layout: Sequence[tuple[str, str, int]], input_size: tuple[int, int]) -> None:
    """The archive loads, declares `tasks`, and a forward pass yields finite outputs of `layout`."""
    try:
        scripted = torchscript.load_scripted(weights)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise InvalidModelVersion(f"{WEIGHTS_FILE} is not a loadable TorchScript archive: {type(exc).__name__}: {str(exc)[:200]}") from None
    declared = [t.to_dict() for t in tasks]
    if [t.to_dict() for t in scripted.tasks] != declared:
        raise InvalidModelVersion(f"{WEIGHTS_FILE} declares tasks {[t.name for t in scripted.tasks]}, the manifest {[t.name for t in tasks]}")
    x = torch.zeros((2, int(input_size[0]), int(input_size[1]), 3), dtype=torch.uint8)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = scripted.module(x)
    except Exception as exc:
        raise InvalidModelVersion(f"{WEIGHTS_FILE}: forward pass on a {tuple(x.shape)} uint8 batch failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    for task, name, width in layout:
        try:
            y = raw[task][name]
        except Exception:
            raise InvalidModelVersion(f"{WEIGHTS_FILE}: output {task}/{name} is missing") from None
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != (2, width):
            raise InvalidModelVersion(f"{WEIGHTS_FILE}: output {task}/{name} has shape {tuple(getattr(y, 'shape', ()))}, expected (2, {width})")
        if not bool(torch.isfinite(y).all()):
            raise InvalidModelVersion(f"{WEIGHTS_FILE}: output {task}/{name} is not finite")


def _get(store: ObjectStore, key: str) -> bytes:
    from minio.error import S3Error

    try:
        return store.get(key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            raise InvalidModelVersion(f"{key} is missing") from None
        raise  # an outage is not the version's fault


def load_version(store: ObjectStore, name: str, version: int, *, check_forward: bool = True) -> ModelVersion:
    """Fetch and validate version `version` of `name`; raises InvalidModelVersion (with the reason)
    for anything that must not be served. S3 outages propagate as they are."""
    check_name(name)
    if int(version) < 1:
        raise InvalidModelVersion(f"version {version} is not a positive integer")
    cfg = parse_config(_get(store, config_key(name)).decode(errors="replace"), name)
    try:
        manifest = json.loads(_get(store, file_key(name, version, MANIFEST_FILE)))
    except ValueError as exc:
        if isinstance(exc, InvalidModelVersion):
            raise
        raise InvalidModelVersion(f"{MANIFEST_FILE} is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise InvalidModelVersion(f"{MANIFEST_FILE}: unsupported format {manifest.get('format') if isinstance(manifest, dict) else None!r}")
    if manifest.get("name") != name or manifest.get("version") != int(version):
        raise InvalidModelVersion(f"{MANIFEST_FILE} describes {manifest.get('name')}@{manifest.get('version')}, not {name}@{version}")
    try:
        tasks = tasks_mod.tasks_from_dicts(manifest["tasks"])
        layout = [(o["task"], o["output"], int(o["width"])) for o in manifest["outputs"]]
        files = {f: manifest["files"][f]["sha256"] for f in (WEIGHTS_FILE, BACKEND_FILE)}
        size = (int(manifest["input"]["height"]), int(manifest["input"]["width"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidModelVersion(f"{MANIFEST_FILE} is incomplete or invalid: {type(exc).__name__}: {exc}") from None
    if layout != output_layout(tasks):
        raise InvalidModelVersion(f"{MANIFEST_FILE}: output layout does not match its tasks")
    blobs = {}
    for filename, want in files.items():
        data = _get(store, file_key(name, version, filename))
        if _sha(data) != want:
            raise InvalidModelVersion(f"{filename}: sha256 {_sha(data)[:12]}... != manifest {str(want)[:12]}...")
        blobs[filename] = data
    if check_forward:
        _check_archive(blobs[WEIGHTS_FILE], tasks, layout, size)
    return ModelVersion(name=name, version=int(version), tasks=tuple(tasks), layout=tuple(layout), camera_hfov_deg=float(manifest.get("camera_hfov_deg", 60.0)), sha256=files[WEIGHTS_FILE], manifest=manifest, config=cfg)
