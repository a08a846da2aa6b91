"""Trigger detectors: a few labelled examples -> a model whose score ranks positives first."""

from __future__ import annotations

import numpy as np

from longtail.fleet.v1 import fleet_pb2
from longtail.model import torchscript
from longtail.synthetic.frames import occluded_only, sample_frames
from longtail.synthetic.world import STOP_SIGN, World, WorldConfig
from longtail.triggerlang import compile_trigger

from trainer import detector


def occluded(gt):
    return any(o.cls == "stop_sign" and o.attributes.get("occlusion") == "foliage" and o.box_px >= 8 for o in gt)


def test_detector_from_few_examples_scores_positives_above_negatives_and_feeds_score():
    pos = sample_frames(World(occluded_only(), seed=31), 30, seed=1, mix={STOP_SIGN: 1.0}, distance=(4, 20), accept=lambda t, gt: occluded(gt), max_tries=50)
    neg = sample_frames(World(WorldConfig().common_only(), seed=32), 40, seed=2, distance=(4, 20))  # plain stop signs included
    x = np.concatenate([pos.images[:12], neg.images[:20]])
    y = np.array([1] * 12 + [0] * 20)
    net = detector.train_detector("occluded_stop_sign", x, y, seed=0, epochs=10)
    scripted = torchscript.load_scripted(torchscript.to_bytes(net))  # what the cars run
    sp, sn = detector.scores(scripted, pos.images[12:]), detector.scores(scripted, neg.images[20:])
    assert sp.mean() > sn.mean() + 0.3 and detector.auc(sp, sn) > 0.85, (sp, sn)

    trigger = compile_trigger('score("occluded_stop_sign@7") > 0.5')
    fired = []
    for scores in detector.frame_scores("occluded_stop_sign", 7, scripted, np.concatenate([pos.images[12:], neg.images[20:]])):
        frame = fleet_pb2.Frame(frame_id="f", vehicle_id="v")
        frame.trigger_scores.update(scores)
        fired.append(bool(trigger.step(trigger.new_state(), frame)))
    tp, fp = np.mean(fired[: len(sp)]), np.mean(fired[len(sp) :])
    assert tp > 0.7 and fp < 0.2, (tp, fp)


def test_positive_predicate_on_labels():
    label = {"detection": {"detections": [{"cls": "stop_sign", "attributes": {"occlusion": "foliage"}}]}}
    pred = "any(d.cls == stop_sign and d.attr.occlusion == foliage)"
    assert detector.is_positive(pred, "stop_sign", label)
    assert not detector.is_positive(pred, "stop_sign", {"detection": {"detections": [{"cls": "stop_sign", "attributes": {"occlusion": "none"}}]}})
    assert not detector.is_positive(pred, "stop_sign", {"detection": {}})
