"""Snapshot decoding and predictions with uncertainty (pure functions)."""

from __future__ import annotations

import io
import math
import tarfile

import numpy as np
import pytest
from PIL import Image

from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2
from longtail.predictions import entropy_margin, predictions
from longtail.snapshots import BadImage, decode_snapshot


def png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def clip(images) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, img in enumerate(images):
            data = png(img)
            info = tarfile.TarInfo(f"{i}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_entropy_and_margin():
    assert entropy_margin([0.5, 0.5]) == pytest.approx((math.log(2), 0.0))
    assert entropy_margin([1.0, 0.0, 0.0]) == pytest.approx((0.0, 1.0))
    e, m = entropy_margin([0.7, 0.2, 0.1])
    assert e == pytest.approx(-(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)))
    assert m == pytest.approx(0.5)


def test_png_and_the_firing_frame_of_a_clip_are_decoded():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    np.testing.assert_array_equal(decode_snapshot(png(frames[0]), "image/png"), frames[0])
    got = decode_snapshot(clip(frames), "application/x-tar", frame_id="car:7", clip_frame_ids=["car:6", "car:7", "car:8"])
    np.testing.assert_array_equal(got, frames[1])
    np.testing.assert_array_equal(decode_snapshot(clip(frames), ""), frames[0])  # sniffed; frame unknown -> first


@pytest.mark.parametrize(
    "data, content_type, message",
    [
        (b"\x89PNG\r\n\x1a\n truncated", "image/png", "not a decodable image"),
        (b"hello", "text/plain", "unsupported content type"),
        (None, "image/png", "at least 16x16"),
    ],
)
def test_bad_snapshots_raise_bad_image(data, content_type, message):
    if data is None:
        data = png(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(BadImage, match=message):
        decode_snapshot(data, content_type)


def test_predictions_per_prototype_carry_uncertainty():
    tasks = [tasks_mod.STOP_SIGN_TASK, tasks_mod.TaskSpec("weather", "classification", ("dry", "wet")), tasks_mod.TaskSpec("pole", "landmark", keypoints=("base", "top"))]
    outputs = {
        "stop_sign": {
            "presence": 0.5,
            "confidence": 0.5,
            "cls": "stop_sign",
            "class_scores": {"stop_sign": 0.5, "background": 0.5},
            "box": (0.1, 0.2, 0.3, 0.4),
            "attributes": {"occlusion": "foliage"},
            "attribute_scores": {"occlusion": 0.9},
            "range_m": 12.0,
            "bearing_rad": 0.1,
        },
        "weather": {"cls": "dry", "probabilities": {"dry": 0.9, "wet": 0.1}, "attributes": {}, "attribute_scores": {}},
        "pole": {"keypoints": [("base", 0.5, 0.9, 0.95), ("top", 0.5, 0.1, 0.6)]},
    }
    got = predictions(tasks, outputs)
    det = got["stop_sign"]
    assert det.prototype == common_pb2.TASK_PROTOTYPE_DETECTION
    assert [d.cls for d in det.output.detection.detections] == ["stop_sign"]
    assert det.output.detection.detections[0].attributes["occlusion"] == "foliage"
    assert det.uncertainty.entropy == pytest.approx(math.log(2), rel=1e-5) and det.uncertainty.margin == pytest.approx(0.0, abs=1e-6)
    cls = got["weather"]
    assert cls.output.classification.cls == "dry" and cls.uncertainty.margin == pytest.approx(0.8)
    lm = got["pole"]
    assert [k.visible for k in lm.output.landmark.keypoints] == [True, True]
    assert lm.uncertainty.margin == pytest.approx(0.2)  # the least certain keypoint (p=0.6)
    assert set(predictions(tasks, outputs, only=["weather"])) == {"weather"}
    # nothing confident enough to be a detection: no instance, but the uncertainty is still scored
    quiet = dict(outputs["stop_sign"], presence=0.1, confidence=0.1, class_scores={"stop_sign": 0.1, "background": 0.9})
    p = predictions(tasks[:1], {"stop_sign": quiet})["stop_sign"]
    assert not p.output.detection.detections and 0 < p.uncertainty.entropy < math.log(2) and p.uncertainty.margin == pytest.approx(0.8)
