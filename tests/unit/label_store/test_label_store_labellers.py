"""Simulated labellers: ground truth with mistakes, the firing frame of a clip."""

import io
import random
import tarfile

import numpy as np
from PIL import Image

from label_store.labellers import annotate, firing_image, render_terminal
from label_store.schema import default_tasks, validate_annotation

STOP = {t.name: t for t in default_tasks()}["stop_sign"]


def truth(n=20):
    objects = [{"cls": "stop_sign", "box": [0.1, 0.1, 0.2, 0.25], "attributes": {"occlusion": "foliage", "mount": "pole", "modifier": "none", "temporary": "false"}} for _ in range(n)]
    objects.append({"cls": "red_round_sign", "box": [0.5, 0.5, 0.6, 0.6], "attributes": {}})
    return {"snapshot_id": "x", "firing_frame_id": "car:2", "frames": [{"frame_id": "car:1", "objects": []}, {"frame_id": "car:2", "objects": objects}]}


def test_perfect_simulated_labeller_reproduces_ground_truth():
    out = annotate(STOP, truth(3), 0.0, random.Random(0))
    validate_annotation(STOP, out)
    assert len(out.detection.detections) == 3  # the red round sign is not a stop sign
    assert all(d.attributes["occlusion"] == "foliage" for d in out.detection.detections)


def test_simulated_mistakes_follow_the_error_rate():
    rng = random.Random(1)
    wrong = total = 0
    for _ in range(200):
        out = annotate(STOP, truth(10), 0.2, rng)
        validate_annotation(STOP, out)  # mistakes still fit the schema
        total += 10
        wrong += 10 - sum(1 for d in out.detection.detections if dict(d.attributes) == truth(1)["frames"][1]["objects"][0]["attributes"])
    assert 0.15 < wrong / total < 0.25


def test_firing_frame_of_a_clip():
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (10, 20, 30)]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i, f in enumerate(frames):
            png = io.BytesIO()
            Image.fromarray(f).save(png, format="PNG")
            info = tarfile.TarInfo(f"{i}.png")
            info.size = len(png.getvalue())
            tar.addfile(info, io.BytesIO(png.getvalue()))
    png = firing_image(buf.getvalue(), "application/x-tar", "c:2", ["c:0", "c:1", "c:2"])
    assert Image.open(io.BytesIO(png)).getpixel((0, 0)) == (30, 30, 30)
    assert len(render_terminal(png, 4).plain.splitlines()) == 2
