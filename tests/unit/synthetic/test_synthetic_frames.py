"""Labelled frames of the synthetic world: deterministic, labels from ground truth."""

from __future__ import annotations

import numpy as np

from longtail import tasks as tasks_mod
from longtail.synthetic import frames as F
from longtail.synthetic.world import STOP_SIGN, World, WorldConfig


def test_sample_frames_is_deterministic_and_labels_follow_ground_truth():
    w = World(WorldConfig(), seed=1)
    a = F.sample_frames(w, 24, seed=3)
    b = F.sample_frames(w, 24, seed=3)
    assert np.array_equal(a.images, b.images) and a.truths == b.truths
    assert not np.array_equal(a.images, F.sample_frames(w, 24, seed=4).images)
    anns = F.annotations_from_truth(tasks_mod.DEFAULT_TASKS, a.truths, min_box_px=3.0)
    for gt, ann in zip(a.truths, anns):
        stops = [o for o in gt if o.cls == STOP_SIGN]
        if not stops:
            assert ann["stop_sign"] == []
        elif any(o.box_px >= 3.0 for o in stops):
            assert ann["stop_sign"] and all(o.cls == STOP_SIGN and o.box_px >= 3.0 for o in ann["stop_sign"])
        else:
            assert "stop_sign" not in ann  # too small to call: unlabelled
    assert sum(1 for ann in anns if ann.get("stop_sign")) >= 5


def test_occluded_only_world_and_accept_filter():
    w = World(F.occluded_only(), seed=2)
    assert all(o.attributes["occlusion"] == "foliage" for o in w.objects_of(STOP_SIGN))
    frames = F.sample_frames(w, 6, seed=0, mix={STOP_SIGN: 1.0}, accept=lambda target, gt: any(o.object_id == target.object_id for o in gt), max_tries=50)
    for target, gt in zip(frames.targets, frames.truths):
        assert target in {o.object_id for o in gt}
