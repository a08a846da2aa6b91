"""Training data: dataset versions from the label store (manifests + snapshot images from the
object store), or the simulator's generator when no labelled data exists yet.

A manifest (`datasets/<name>/<version>/manifest-*.jsonl`, written by the label store) is a header
line and one line per sample: split, object location, and per task the resolved label as
`common.v1.TaskOutput` JSON. Several dataset versions are merged by sample id (a sample labelled
for `stop_sign` in one and for `caution_lights_on` in another carries both labels); a task a
sample has no label for adds no loss there.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from longtail.snapshots import decode_snapshot  # the one snapshot decoder (PNG, JPEG, clips)
from longtail.tasks import TaskSpec

IMAGE_SIZE = 64
SPLITS = ("train", "val", "test")
WORLDS = ("default", "common", "occluded", "mixed")  # what `generated` draws from (fallback_world, replay_world)


@dataclass
class Example:
    sample_id: str
    split: str
    bucket: str
    object_key: str
    content_type: str
    labels: dict[str, dict] = field(default_factory=dict)  # task -> TaskOutput JSON (annotation)


@dataclass
class Split:
    images: np.ndarray  # uint8 [N, H, W, 3]
    annotations: list[dict]  # encode_targets input, per image
    sample_ids: list[str]
    labels: list[dict[str, dict]] = field(default_factory=list)  # raw TaskOutput JSON per image

    def __len__(self) -> int:
        return len(self.sample_ids)


def parse_manifest(data: bytes) -> tuple[dict, list[Example]]:
    lines = [ln for ln in data.decode().splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty manifest")
    header = json.loads(lines[0])
    if header.get("format") != 1:
        raise ValueError(f"unsupported manifest format {header.get('format')!r}")
    out = []
    for ln in lines[1:]:
        d = json.loads(ln)
        labels = {task: (v.get("annotation") or {}) for task, v in (d.get("labels") or {}).items()}
        out.append(Example(d["sample_id"], d.get("split", "train"), d.get("bucket", ""), d["object_key"], d.get("content_type", ""), labels))
    return header, out


def merge(examples: Sequence[Example]) -> list[Example]:
    by_id: dict[str, Example] = {}
    for e in examples:
        if e.sample_id in by_id:
            by_id[e.sample_id].labels.update(e.labels)
        else:
            by_id[e.sample_id] = Example(e.sample_id, e.split, e.bucket, e.object_key, e.content_type, dict(e.labels))
    return [by_id[k] for k in sorted(by_id)]


def _box(b: Mapping[str, Any]) -> tuple[float, float, float, float]:
    # MessageToDict leaves out fields equal to 0
    return (float(b.get("x_min", 0.0)), float(b.get("y_min", 0.0)), float(b.get("x_max", 0.0)), float(b.get("y_max", 0.0)))


def annotation_for(task: TaskSpec, output: Mapping[str, Any] | None):
    """A label's TaskOutput JSON -> the `encode_targets` annotation of one task (None = unlabelled)."""
    if output is None:
        return None
    if task.prototype == "detection":
        dets = (output.get("detection") or {}).get("detections") or []
        return [{"cls": d.get("cls", ""), "box": _box(d.get("box") or {}), "attributes": dict(d.get("attributes") or {})} for d in dets]
    if task.prototype == "classification":
        c = output.get("classification")
        if not c or not c.get("cls"):
            return None
        return {"cls": c["cls"], "attributes": dict(c.get("attributes") or {})}
    kps = (output.get("landmark") or {}).get("keypoints") or []
    return {k["name"]: (float(k.get("x", 0.0)), float(k.get("y", 0.0)), bool(k.get("visible", False))) for k in kps if "name" in k}


def decode(data: bytes, content_type: str = "", size: int = IMAGE_SIZE) -> np.ndarray:
    from PIL import Image

    img = decode_snapshot(data, content_type)
    if img.shape[:2] != (size, size):
        img = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return img


def fetch_images(get: Callable[[str, str], bytes], examples: Sequence[Example], workers: int = 8) -> np.ndarray:
    """Images of `examples` (get(bucket, key) -> bytes), in order."""
    if not examples:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(lambda e: decode(get(e.bucket, e.object_key), e.content_type), examples))
    return np.stack(images)


def to_splits(tasks: Sequence[TaskSpec], examples: Sequence[Example], images: np.ndarray) -> dict[str, Split]:
    out = {}
    for split in SPLITS:
        idx = [i for i, e in enumerate(examples) if e.split == split]
        anns = [{t.name: annotation_for(t, examples[i].labels.get(t.name)) for t in tasks} for i in idx]
        anns = [{k: v for k, v in a.items() if v is not None} for a in anns]
        out[split] = Split(images[idx] if idx else np.zeros((0, *images.shape[1:]), np.uint8), anns, [examples[i].sample_id for i in idx], [examples[i].labels for i in idx])
    return out


# ------------------------------------------------------------------------------------------
# Generator fallback (no labelled data yet)
# ------------------------------------------------------------------------------------------


def generated(tasks: Sequence[TaskSpec], n: int, seed: int, world: str = "default", val_fraction: float = 0.15) -> dict[str, Split]:
    """Frames from the simulator with ground-truth labels (what the label store's simulated
    labellers would produce), for when a run has no labelled data. `world`: "default" (with the
    long tail), "common" (long tail off), "occluded" (every stop sign occluded), "mixed" (half
    of the stop signs occluded, the rest plain: what labelled fleet data of the long tail plus
    the common case looks like)."""
    from longtail.synthetic.frames import TRAIN_WORLD_SEED, annotations_from_truth, occluded_only, sample_frames
    from longtail.synthetic.world import World, WorldConfig

    worlds = dict(zip(WORLDS, (WorldConfig(), WorldConfig().common_only(), occluded_only(), WorldConfig().only(occluded_rate=0.5)), strict=True))
    if world not in worlds:
        raise ValueError(f"world {world!r} (fallback_world, replay_world) is not one of {', '.join(worlds)}")
    config = worlds[world]
    frames = sample_frames(World(config, seed=TRAIN_WORLD_SEED + 1000 + seed), n, seed=seed)
    anns = annotations_from_truth(tasks, frames.truths)
    n_val = max(1, int(n * val_fraction)) if n > 1 and val_fraction > 0 else 0
    ids = [f"generated:{world}:{seed}:{i}" for i in range(n)]
    return {
        "train": Split(frames.images[n_val:], anns[n_val:], ids[n_val:]),
        "val": Split(frames.images[:n_val], anns[:n_val], ids[:n_val]),
        "test": Split(frames.images[:0], [], []),
    }


def concat(a: Split, b: Split) -> Split:
    if not len(a):
        return b
    if not len(b):
        return a
    return Split(np.concatenate([a.images, b.images]), a.annotations + b.annotations, a.sample_ids + b.sample_ids, a.labels + b.labels)


def png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()
