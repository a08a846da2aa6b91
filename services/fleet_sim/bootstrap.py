"""The bootstrap perception model: what the cars run before the data engine has published anything.

It is the shared `longtail.model.network.MultiTaskNet` trained on frames rendered from a world with the
long tail switched off (`WorldConfig.common_only()`: no foliage-occluded, handheld, gated,
temporary or modified stop signs; distractor signs and traffic lights stay). It is therefore good
at plain stop signs and weak, on purpose, on occluded ones: the gap the data engine has to close.

Training is reproducible from the seed (seeded worlds, seeded poses, seeded sensor noise,
`torch.manual_seed`, a fixed thread count) and takes about a minute on 2 CPU cores. The weights
are cached as a TorchScript archive under `$LONGTAIL_CACHE_DIR/models/` (default
`~/.cache/longtail/models/`, the scripts' one cache; override with `LONGTAIL_MODEL_CACHE`), keyed by the seed and a hash of this code, the world/render/model code
and the training parameters, so later calls load in well under a second.

`sample_frames`, `annotations_from_truth` and `evaluate_on` are reusable: they generate labelled
frames for any `WorldConfig` and measure a model on them (e.g. a world where every stop sign is
occluded by foliage).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from longtail import predictions as predictions_mod
from longtail import tasks as tasks_mod
from longtail.model import fitting, network, postprocess, torchscript
from longtail.model.fitting import encode_targets, fit
from longtail.model.network import MultiTaskNet
from longtail.synthetic import frames as frames_mod
from longtail.synthetic import render as render_mod
from longtail.synthetic import world as world_mod
from longtail.synthetic.frames import EVAL_WORLD_SEED, TRAIN_WORLD_SEED, annotations_from_truth, occluded_only, sample_frames
from longtail.synthetic.render import DEFAULT_CAMERA, Camera, GroundTruthObject
from longtail.synthetic.world import OTHER_SIGN, RED_ROUND_SIGN, STOP_SIGN, TRAFFIC_LIGHT, World, WorldConfig, WorldObject
from longtail.tasks import DEFAULT_TASKS, TaskSpec


def cache_dir() -> Path:
    if os.environ.get("LONGTAIL_MODEL_CACHE"):
        return Path(os.environ["LONGTAIL_MODEL_CACHE"])
    return Path(os.environ.get("LONGTAIL_CACHE_DIR") or Path.home() / ".cache" / "longtail") / "models"


def _code_hash() -> str:
    h = hashlib.sha256()
    for mod in (world_mod, render_mod, frames_mod, network, fitting, postprocess, torchscript, tasks_mod):
        assert mod.__file__ is not None  # modules loaded from source files
        h.update(Path(mod.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(torch.__version__.encode())
    return h.hexdigest()


def bootstrap_cache_path(seed: int, params: Mapping) -> Path:
    h = hashlib.sha256(_code_hash().encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return cache_dir() / f"bootstrap-{seed}-{h.hexdigest()[:16]}.pt"


def train_on_world(
    config: WorldConfig, seed: int = 0, samples: int = 6000, epochs: int = 8, tasks: Sequence[TaskSpec] | None = None, batch_size: int = 64, lr: float = 3e-3, threads: int = 2, log: Callable[[str], None] | None = None
) -> MultiTaskNet:
    """Train a fresh `MultiTaskNet` on `samples` frames of a world built with `config`."""
    tasks = list(tasks or DEFAULT_TASKS)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        world = World(config, seed=TRAIN_WORLD_SEED + seed)
        frames = sample_frames(world, samples, seed=seed)
        targets = encode_targets(tasks, annotations_from_truth(tasks, frames.truths))
        t1 = time.perf_counter()
        torch.manual_seed(seed)
        model = MultiTaskNet(tasks)

        def on_epoch(epoch: int, parts: dict) -> None:
            if log:
                log(f"epoch {epoch + 1}/{epochs} loss {parts.get('total', 0):.4f} ({time.perf_counter() - t1:.0f}s)")

        fit(model, frames.images, targets, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, on_epoch=on_epoch)
        if log:
            log(f"data {t1 - t0:.1f}s, training {time.perf_counter() - t1:.1f}s")
    finally:
        torch.set_num_threads(previous_threads)
    return model


def train_bootstrap_model(seed: int = 0, samples: int = 6000, epochs: int = 8, config: WorldConfig | None = None, use_cache: bool = True, log: Callable[[str], None] | None = None) -> MultiTaskNet:
    """The bootstrap model for `seed`: trained on common cases only (the long-tail variant rates
    of `config`, default `WorldConfig()`, are forced to 0), cached on disk."""
    config = (config or WorldConfig()).common_only()
    params = {"samples": samples, "epochs": epochs, "config": config.to_dict(), "tasks": [t.to_dict() for t in DEFAULT_TASKS]}
    path = bootstrap_cache_path(seed, params)
    if use_cache and path.exists():
        try:
            return torchscript.load(str(path))
        except Exception:  # corrupt/partial cache: retrain
            pass
    model = train_on_world(config, seed=seed, samples=samples, epochs=epochs, log=log)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            torchscript.save(model, tmp)
            os.replace(tmp, path)  # atomic: concurrent trainers of the same seed agree anyway
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return model


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


def evaluate_on(
    model, config: WorldConfig, samples: int = 400, seed: int = 0, world_seed: int = EVAL_WORLD_SEED, min_box_px: float = 6.0, threshold: float = 0.5, negatives: int | None = None, camera: Camera | None = None
) -> dict[str, float]:
    """Measure `model` (anything with `.predict`) on a world built with `config`:

    - stop_sign/recall: share of `samples` frames approaching a stop sign (largest stop sign in
      view, box >= `min_box_px` tall, not cut by the border) where presence >= `threshold`;
      stop_sign/iou: mean box IoU on those frames; stop_sign/attr:<k>: attribute accuracy;
    - stop_sign/false_positive_rate: on frames without any stop sign in view (distractors,
      lights, plain road);
    - traffic_light/recall and traffic_light/state_accuracy, likewise.
    """
    camera = camera or DEFAULT_CAMERA
    world = World(config, seed=world_seed)
    negatives = samples if negatives is None else negatives

    def salient(cls: str, gt: list[GroundTruthObject]) -> GroundTruthObject | None:
        objs = [o for o in gt if o.cls == cls]
        if not objs:
            return None
        return max(objs, key=lambda o: (o.box[2] - o.box[0]) * (o.box[3] - o.box[1]))

    def accept_for(cls: str) -> Callable:
        def accept(target: WorldObject | None, gt: list[GroundTruthObject]) -> bool:
            best = salient(cls, gt)
            return best is not None and target is not None and best.object_id == target.object_id and best.box_px >= min_box_px and not best.truncated

        return accept

    def no_stop(target: WorldObject | None, gt: list[GroundTruthObject]) -> bool:
        return not any(o.cls == STOP_SIGN for o in gt)

    metrics: dict[str, float] = {}
    for cls, task, n in ((STOP_SIGN, "stop_sign", samples), (TRAFFIC_LIGHT, "traffic_light", samples // 2)):
        frames = sample_frames(world, n, seed=seed * 31 + len(cls), mix={cls: 1.0}, distance=(3.0, 30.0), accept=accept_for(cls), max_tries=50, camera=camera)
        preds = model.predict(frames.images)
        hits, used = 0, 0
        ious: list[float] = []
        attr_ok: dict[str, int] = {}
        attr_n: dict[str, int] = {}
        for gt, pred in zip(frames.truths, preds):
            best = salient(cls, gt)
            if best is None or best.box_px < min_box_px or best.truncated:
                continue  # the accept test gave up on this one
            used += 1
            p = pred[task]
            if p["presence"] >= threshold:
                hits += 1
                ious.append(predictions_mod.box_iou(p["box"], best.box))
            for k, v in best.attributes.items():
                if k in p["attributes"]:
                    attr_n[k] = attr_n.get(k, 0) + 1
                    attr_ok[k] = attr_ok.get(k, 0) + (p["attributes"][k] == v)
        metrics[f"{task}/frames"] = used
        metrics[f"{task}/recall"] = hits / max(used, 1)
        metrics[f"{task}/iou"] = float(np.mean(ious)) if ious else 0.0
        for k in attr_n:
            metrics[f"{task}/attr:{k}"] = attr_ok[k] / attr_n[k]
    if negatives:
        mix = {RED_ROUND_SIGN: 0.35, OTHER_SIGN: 0.2, TRAFFIC_LIGHT: 0.15, "road": 0.3}
        frames = sample_frames(world, negatives, seed=seed * 31 + 7, mix=mix, accept=no_stop, max_tries=50, camera=camera)
        preds = model.predict(frames.images)
        fp = [p["stop_sign"]["presence"] >= threshold for gt, p in zip(frames.truths, preds) if no_stop(None, gt)]
        metrics["stop_sign/false_positive_rate"] = float(np.mean(fp)) if fp else 0.0
    return metrics


if __name__ == "__main__":  # python -m fleet_sim.bootstrap: train (or load) and report
    started = time.perf_counter()
    m = train_bootstrap_model(log=print)
    print(f"bootstrap ready in {time.perf_counter() - started:.1f}s, params {network.num_parameters(m)}, sha256 {torchscript.state_dict_sha256(m)[:16]}")
    print("plain   ", evaluate_on(m, WorldConfig().common_only()))
    print("occluded", evaluate_on(m, occluded_only(), negatives=0))
