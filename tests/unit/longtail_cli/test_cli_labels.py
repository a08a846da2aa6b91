"""`longtail label` (the human prompt flow) and `longtail suites report`."""

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L

from label_store.schema import default_tasks, validate_annotation
from longtail_cli.labels import ask_annotation, needs_data_next, report_table

STOP = {t.name: t for t in default_tasks()}["stop_sign"]


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

    def result(suite, version, passed, model="m"):
        return L.SuiteResult(suite=suite, model=C.ModelRef(name=model, version=version), passed=passed, total=100, pass_rate=passed / 100)

    results = [result("occluded", 1, 40), result("occluded", 2, 93), result("handheld", 2, 12), result("plate", 2, 61), result("plain", 2, 100)]
    console = Console(record=True, width=200)
    console.print(needs_data_next(results, target=0.9))
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in console.export_text().splitlines() if line.startswith("│")]
    assert [row[:2] for row in rows] == [["1", "handheld"], ["2", "plate"]]  # occluded's newest is 93%: passing; plain passes
    assert rows[0][3] == "12.0% [7, 20] (12/100)" and rows[0][4] == "88"
