"""The bootstrap perception model: what the cars run before the data engine has published anything.

It is the shared `longtail.model.MultiTaskNet` trained on frames rendered from a world with the
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
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fleet_sim import render as render_mod
from fleet_sim import world as world_mod
from fleet_sim.render import DEFAULT_CAMERA, Camera, GroundTruthObject, render
from fleet_sim.world import OTHER_SIGN, RED_ROUND_SIGN, STOP_SIGN, TRAFFIC_LIGHT, DIRECTIONS, World, WorldConfig, WorldObject
from longtail import model as model_mod
from longtail import predictions as predictions_mod
from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2
from longtail.model import MultiTaskNet, encode_targets, fit
from longtail.tasks import DEFAULT_TASKS, TaskSpec

# What a training/evaluation frame is centred on, with weights.
DEFAULT_MIX: dict[str, float] = {STOP_SIGN: 0.45, TRAFFIC_LIGHT: 0.2, RED_ROUND_SIGN: 0.12, OTHER_SIGN: 0.08, "road": 0.15}
TRAIN_WORLD_SEED = 7_001  # + model seed; evaluation worlds use other seeds
EVAL_WORLD_SEED = 9_001


def cache_dir() -> Path:
    if os.environ.get("LONGTAIL_MODEL_CACHE"):
        return Path(os.environ["LONGTAIL_MODEL_CACHE"])
    return Path(os.environ.get("LONGTAIL_CACHE_DIR") or Path.home() / ".cache" / "longtail") / "models"


# ------------------------------------------------------------------------------------------
# Frames
# ------------------------------------------------------------------------------------------


def approach_pose(obj: WorldObject, distance: float, lateral: float = 0.0, dheading: float = 0.0, speed: float = 10.0) -> common_pb2.Pose:
    """Pose of a car in the lane the object addresses, `distance` metres before it (`lateral`
    metres to the left of the lane centre, heading off by `dheading`)."""
    h = obj.approach_heading
    c, s = math.cos(h), math.sin(h)
    return common_pb2.Pose(
        x=obj.anchor_x - c * distance - s * lateral, y=obj.anchor_y - s * distance + c * lateral,
        heading=world_mod.wrap_angle(h + dheading), speed=speed,
    )


def random_road_pose(world: World, rng: np.random.Generator) -> common_pb2.Pose:
    """A pose in a random lane, anywhere on the grid."""
    n, b = world.config.blocks, world.config.block_m
    lane = world.config.road_half_width_m / 2.0
    i, j = int(rng.integers(0, n + 1)), int(rng.integers(0, n + 1))
    dirs = world.valid_dirs(i, j)
    d = dirs[int(rng.integers(0, len(dirs)))]
    dx, dy = DIRECTIONS[d]
    s = rng.uniform(0.0, b)
    x, y = world.node_xy(i, j)
    return common_pb2.Pose(
        x=x + dx * s + dy * lane, y=y + dy * s - dx * lane,
        heading=world_mod.wrap_angle(d * math.pi / 2 + rng.normal(0.0, 0.04)), speed=float(rng.uniform(0, 14)),
    )


@dataclass
class Frames:
    images: np.ndarray  # uint8 [N, size, size, 3]
    truths: list[list[GroundTruthObject]]
    poses: list[common_pb2.Pose]
    targets: list[str]  # object id the frame was centred on ("" for random road frames)


def sample_frames(world: World, n: int, seed: int, mix: Mapping[str, float] | None = None, distance: tuple[float, float] = (4.0, 40.0),
                  size: int = 64, camera: Camera | None = None, accept: Callable[[WorldObject, list[GroundTruthObject]], bool] | None = None,
                  max_tries: int = 20, lateral_sd: float = 0.5, heading_sd: float = 0.05,
                  objects: Callable[[WorldObject], bool] | None = None) -> Frames:
    """`n` frames of `world`: approaches to random objects of the classes in `mix` (by weight;
    "road" = a random lane pose), at a uniform distance, with lane wander (`lateral_sd` metres)
    and heading noise (`heading_sd` radians). `objects` narrows the objects approached (e.g. a
    handful of signs an operator photographed). `accept(target, truths)` can reject a frame (it
    is re-drawn, up to `max_tries` times)."""
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, seed, 0xF4A]))
    mix = dict(mix or DEFAULT_MIX)
    pools = {k: [o for o in world.objects_of(k) if objects is None or objects(o)] for k in mix if k != "road"}
    keys = [k for k in mix if k == "road" or pools.get(k)]
    weights = np.array([mix[k] for k in keys], dtype=float)
    weights /= weights.sum()
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    truths: list[list[GroundTruthObject]] = []
    poses, targets = [], []
    for i in range(n):
        for _ in range(max_tries):
            key = keys[int(rng.choice(len(keys), p=weights))]
            if key == "road":
                obj, pose = None, random_road_pose(world, rng)
            else:
                pool = pools[key]
                obj = pool[int(rng.integers(0, len(pool)))]
                pose = approach_pose(obj, rng.uniform(*distance), rng.normal(0.0, lateral_sd), rng.normal(0.0, heading_sd), rng.uniform(0.0, 14.0))
            img, gt = render(world, pose, size=size, camera=camera, noise_seed=int(rng.integers(0, 2**31)))
            if accept is None or accept(obj, gt):
                break
        images[i] = img
        truths.append(gt)
        poses.append(pose)
        targets.append(obj.object_id if obj is not None else "")
    return Frames(images, truths, poses, targets)


def annotations_from_truth(tasks: Sequence[TaskSpec], truths: Sequence[Sequence[GroundTruthObject]], min_box_px: float = 3.0) -> list[dict]:
    """Ground truth -> `encode_targets` annotations, like a careful labeller: detection tasks get
    the objects of their classes; a frame whose only instances are smaller than `min_box_px`
    (too small to call either way) is left unlabelled for that task."""
    out = []
    for gt in truths:
        ann: dict = {}
        for t in tasks:
            if t.prototype != "detection":
                continue  # no simulator ground truth for other prototypes
            objs = [o for o in gt if o.cls in t.classes]
            big = [o for o in objs if o.box_px >= min_box_px]
            if objs and not big:
                continue
            ann[t.name] = big
        out.append(ann)
    return out


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


def _code_hash() -> str:
    h = hashlib.sha256()
    for mod in (world_mod, render_mod, model_mod, tasks_mod):
        h.update(Path(mod.__file__).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(torch.__version__.encode())
    return h.hexdigest()


def bootstrap_cache_path(seed: int, params: Mapping) -> Path:
    h = hashlib.sha256(_code_hash().encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return cache_dir() / f"bootstrap-{seed}-{h.hexdigest()[:16]}.pt"


def train_on_world(config: WorldConfig, seed: int = 0, samples: int = 6000, epochs: int = 8, tasks: Sequence[TaskSpec] | None = None,
                   batch_size: int = 64, lr: float = 3e-3, threads: int = 2, log: Callable[[str], None] | None = None) -> MultiTaskNet:
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


def train_bootstrap_model(seed: int = 0, samples: int = 6000, epochs: int = 8, config: WorldConfig | None = None, use_cache: bool = True,
                          log: Callable[[str], None] | None = None) -> MultiTaskNet:
    """The bootstrap model for `seed`: trained on common cases only (the long-tail variant rates
    of `config`, default `WorldConfig()`, are forced to 0), cached on disk."""
    config = (config or WorldConfig()).common_only()
    params = {"samples": samples, "epochs": epochs, "config": config.to_dict(), "tasks": [t.to_dict() for t in DEFAULT_TASKS]}
    path = bootstrap_cache_path(seed, params)
    if use_cache and path.exists():
        try:
            return model_mod.load(str(path))
        except Exception:  # corrupt/partial cache: retrain
            pass
    model = train_on_world(config, seed=seed, samples=samples, epochs=epochs, log=log)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            model_mod.save(model, tmp)
            os.replace(tmp, path)  # atomic: concurrent trainers of the same seed agree anyway
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return model


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


def evaluate_on(model, config: WorldConfig, samples: int = 400, seed: int = 0, world_seed: int = EVAL_WORLD_SEED, min_box_px: float = 6.0,
                threshold: float = 0.5, negatives: int | None = None, camera: Camera | None = None) -> dict[str, float]:
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
        hits, ious, attr_ok, attr_n, used = 0, [], {}, {}, 0
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


def occluded_only(config: WorldConfig | None = None) -> WorldConfig:
    """A world where every stop sign is occluded by foliage (the demo's unit-test population)."""
    return (config or WorldConfig()).only(occluded_rate=1.0)


if __name__ == "__main__":  # python -m fleet_sim.bootstrap: train (or load) and report
    started = time.perf_counter()
    m = train_bootstrap_model(log=print)
    print(f"bootstrap ready in {time.perf_counter() - started:.1f}s, params {model_mod.num_parameters(m)}, sha256 {model_mod.state_dict_sha256(m)[:16]}")
    print("plain   ", evaluate_on(m, WorldConfig().common_only()))
    print("occluded", evaluate_on(m, occluded_only(), negatives=0))
