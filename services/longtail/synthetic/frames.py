"""Labelled frames from the synthetic world: a camera posed near a chosen kind of object
(`sample_frames`), rendered, with the annotations a careful labeller would give
(`annotations_from_truth`). What every consumer of synthetic data uses: the bootstrap model,
the trainer's fallback and rehearsal data, the demo's suites and seed sets."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from longtail.common.v1 import common_pb2
from longtail.synthetic.render import Camera, GroundTruthObject, render
from longtail.synthetic.world import DIRECTIONS, OTHER_SIGN, RED_ROUND_SIGN, STOP_SIGN, TRAFFIC_LIGHT, World, WorldConfig, WorldObject, wrap_angle
from longtail.tasks import TaskSpec

# What a training/evaluation frame is centred on, with weights.
DEFAULT_MIX: dict[str, float] = {STOP_SIGN: 0.45, TRAFFIC_LIGHT: 0.2, RED_ROUND_SIGN: 0.12, OTHER_SIGN: 0.08, "road": 0.15}
TRAIN_WORLD_SEED = 7_001  # + model seed; evaluation worlds use other seeds
EVAL_WORLD_SEED = 9_001


def approach_pose(obj: WorldObject, distance: float, lateral: float = 0.0, dheading: float = 0.0, speed: float = 10.0) -> common_pb2.Pose:
    """Pose of a car in the lane the object addresses, `distance` metres before it (`lateral`
    metres to the left of the lane centre, heading off by `dheading`)."""
    h = obj.approach_heading
    c, s = math.cos(h), math.sin(h)
    return common_pb2.Pose(
        x=obj.anchor_x - c * distance - s * lateral,
        y=obj.anchor_y - s * distance + c * lateral,
        heading=wrap_angle(h + dheading),
        speed=speed,
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
        x=x + dx * s + dy * lane,
        y=y + dy * s - dx * lane,
        heading=wrap_angle(d * math.pi / 2 + rng.normal(0.0, 0.04)),
        speed=float(rng.uniform(0, 14)),
    )


@dataclass
class Frames:
    images: np.ndarray  # uint8 [N, size, size, 3]
    truths: list[list[GroundTruthObject]]
    poses: list[common_pb2.Pose]
    targets: list[str]  # object id the frame was centred on ("" for random road frames)


def sample_frames(
    world: World,
    n: int,
    seed: int,
    mix: Mapping[str, float] | None = None,
    distance: tuple[float, float] = (4.0, 40.0),
    size: int = 64,
    camera: Camera | None = None,
    accept: Callable[[WorldObject | None, list[GroundTruthObject]], bool] | None = None,
    max_tries: int = 20,
    lateral_sd: float = 0.5,
    heading_sd: float = 0.05,
    objects: Callable[[WorldObject], bool] | None = None,
) -> Frames:
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


def occluded_only(config: WorldConfig | None = None) -> WorldConfig:
    """A world where every stop sign is occluded by foliage (the demo's unit-test population)."""
    return (config or WorldConfig()).only(occluded_rate=1.0)
