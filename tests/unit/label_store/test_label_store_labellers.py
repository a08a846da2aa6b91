"""Simulated labellers (ground truth with mistakes) and the human prompt flow."""

import io
import random
import tarfile

import numpy as np
from PIL import Image

from label_store.cli import ask_annotation, report_table
from label_store.labellers import annotate, firing_image, render_terminal
from label_store.schema import default_tasks, validate_annotation
from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L

STOP = {t.name: t for t in default_tasks()}["stop_sign"]


def truth(n=20):
    objects = [{"cls": "stop_sign", "box": [0.1, 0.1, 0.2, 0.25], "attributes": {"occlusion": "foliage", "mount": "pole", "modifier": "none", "temporary": "false"}}
               for _ in range(n)]
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


def test_human_prompt_accepts_suggestions_and_fills_attributes():
    lease = L.LabelLease(task="stop_sign", sample=L.Sample(sample_id="a" * 64))
    d = lease.sample.car_detections.add(cls="stop_sign", confidence=0.4, box=C.BoundingBox(x_min=0.1, y_min=0.1, x_max=0.2, y_max=0.2))
    d.attributes["occlusion"] = "none"
    answers = iter(["a", "foliage", "pole", "none", "leaves?", "false"])  # one invalid answer is asked again
    asked = []

    def ask(question, default):
        asked.append(question)
        return next(answers)

    out = ask_annotation(STOP, lease, ask)
    validate_annotation(STOP, out)
    assert dict(out.detection.detections[0].attributes) == {"occlusion": "foliage", "mount": "pole", "modifier": "none", "temporary": "false"}
    assert len(asked) == 6


def test_human_prompt_skip_and_nothing_there():
    lease = L.LabelLease(task="stop_sign", sample=L.Sample(sample_id="a" * 64))
    assert ask_annotation(STOP, lease, lambda q, d: "s") is None
    out = ask_annotation(STOP, lease, lambda q, d: "n")
    assert out.WhichOneof("value") == "detection" and not out.detection.detections


def test_report_table_marks_regressions():
    results = [L.SuiteResult(suite="s", model=C.ModelRef(name="m", version=v), passed=p, total=10, pass_rate=p / 10) for v, p in ((1, 4), (2, 9), (3, 8))]
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(report_table(results))
    text = console.export_text()
    assert "m:1" in text and "m:3" in text and "80.0% (8/10)" in text


def test_needs_data_next_ranks_the_newest_failing_suites_lowest_first():
    from rich.console import Console

    from label_store.cli import needs_data_next

    def result(suite, version, passed, model="m"):
        return L.SuiteResult(suite=suite, model=C.ModelRef(name=model, version=version), passed=passed, total=100, pass_rate=passed / 100)

    results = [result("occluded", 1, 40), result("occluded", 2, 93), result("handheld", 2, 12), result("plate", 2, 61), result("plain", 2, 100)]
    console = Console(record=True, width=200)
    console.print(needs_data_next(results, target=0.9))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in console.export_text().splitlines() if line.startswith("│")]
    assert [row[:2] for row in rows] == [["1", "handheld"], ["2", "plate"]]  # occluded's newest is 93%: passing; plain passes
    assert rows[0][3] == "12.0% [7, 20] (12/100)" and rows[0][4] == "88"
