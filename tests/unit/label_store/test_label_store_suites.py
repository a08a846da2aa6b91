"""Suite files (YAML with line numbers), versioning, promotion, evaluation and the report."""

from pathlib import Path

import pytest
from label_store_helpers import register, sid

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L

from label_store.suites import SuiteFileError, parse
from label_store.tx import StoreError

REPO = Path(__file__).resolve().parents[3]
OCCLUDED = "any(d.cls == stop_sign and d.attr.occlusion == foliage and d.conf >= 0.5)"


def suite_yaml(*samples, predicate=OCCLUDED, name="stop_sign.occluded"):
    cases = "".join(f"  - sample: {s}\n    note: case {i}\n" for i, s in enumerate(samples))
    return f"suite: {name}\ntask: stop_sign\ndescription: occluded\npredicate: {predicate}\ncases:\n{cases}"


@pytest.mark.parametrize(
    "text,line,fragment",
    [
        ("suite: a\ntask: stop_sign\ncases:\n  - sample: 123\n", 4, "64 hex"),
        ("suite: a\ntask: stop_sign\ncases:\n  - note: x\n", 4, "without `sample:`"),
        (f"suite: a\ntask: stop_sign\ncases:\n  - sample: {'a' * 64}\n", 4, "no suite-level default"),
        (f"suite: a\ntask: stop_sign\ncases:\n  - sample: {'a' * 64}\n    predicate: any(d.cls == )\n", 5, "column"),
        (f"suite: a\ntask: stop_sign\ncases:\n  - sample: {'a' * 64}\n    predicate: |\n      any(stop_sign) and\n      flicker(stop_sign)\n", 6, "flicker"),
        ("suite: a\ntask: stop_sign\ncolour: red\n", 3, "unknown key"),
        ("suite: A B\ntask: stop_sign\n", 1, "must match"),
        ("suite: a\ntask: [x\n", 3, "not valid YAML"),
        (f"suite: a\ntask: t\npredicate: any(stop_sign)\ncases:\n  - sample: {'a' * 64}\n  - sample: {'a' * 64}\n", 6, "duplicate case"),
    ],
)
def test_parse_errors_name_the_line(text, line, fragment):
    with pytest.raises(SuiteFileError) as err:
        parse(text)
    assert err.value.line == line and fragment in str(err.value)


def test_example_suite_files_parse():
    files = sorted((REPO / "suites").glob("*.yaml"))
    assert files
    for path in files:
        assert parse(path.read_text()).task == "stop_sign"


def test_versions_bump_only_on_change(store):
    register(store, 3)
    s1, changed1 = store.suites.upsert(suite_yaml(sid(0), sid(1)))
    s2, changed2 = store.suites.upsert(suite_yaml(sid(0), sid(1)) + "\n# a comment changes nothing\n")
    s3, changed3 = store.suites.upsert(suite_yaml(sid(0), sid(1), sid(2)))
    assert (s1.version, changed1, s2.version, changed2, s3.version, changed3) == (1, True, 1, False, 2, True)
    assert store.suites.get("stop_sign.occluded", 1).cases_count == 2 and store.suites.get("stop_sign.occluded").cases_count == 3


def test_suite_refers_to_registered_samples_and_known_tasks(store):
    with pytest.raises(StoreError) as err:
        store.suites.upsert(suite_yaml(sid(9)))
    assert err.value.code == "INVALID_ARGUMENT" and "line 6" in str(err.value)
    with pytest.raises(StoreError) as err:
        store.suites.upsert("suite: x\ntask: no_such_task\n")
    assert err.value.code == "INVALID_ARGUMENT" and "task" in str(err.value)


def prediction(occlusion, conf):
    p = C.TaskPrediction(task="stop_sign", output=C.TaskOutput(detection=C.DetectionOutput()))
    d = p.output.detection.detections.add(cls="stop_sign", confidence=conf, box=C.BoundingBox(x_max=0.1, y_max=0.1))
    d.attributes["occlusion"] = occlusion
    return p


def test_promote_evaluate_and_report(store):
    register(store, 4)
    store.suites.upsert(suite_yaml(sid(0), sid(1)))
    case, suite, existed = store.suites.promote("stop_sign.occluded", sid(2), OCCLUDED, "failing fleet sample")
    assert (suite.version, suite.cases_count, existed) == (2, 3, False)
    assert sid(2) in suite.source_yaml or sid(2) in store.suites.get("stop_sign.occluded").source_yaml
    assert store.suites.promote("stop_sign.occluded", sid(2), OCCLUDED)[2] is True
    with pytest.raises(StoreError) as err:
        store.suites.promote("stop_sign.occluded", sid(99), OCCLUDED)
    assert err.value.code == "NOT_FOUND"

    def preds(*pairs):
        return [L.CasePredictions(sample_id=sid(i), predictions={"stop_sign": prediction(o, c)}) for i, (o, c) in enumerate(pairs)]

    v1 = store.suites.evaluate(C.ModelRef(name="multitask", version=1), [], preds(("foliage", 0.9), ("none", 0.9), ("foliage", 0.3)), True)
    v2 = store.suites.evaluate(C.ModelRef(name="multitask", version=2), [], preds(("foliage", 0.9), ("foliage", 0.8), ("foliage", 0.7)), True)
    assert (v1[0].passed, v1[0].total, v2[0].passed) == (1, 3, 3)
    assert "conf=0.30" in {c.case_id: c for c in v1[0].case_results}[case.case_id].detail
    report = store.suites.report()
    assert [(r.model.version, r.pass_rate) for r in report] == [(2, 1.0), (1, pytest.approx(1 / 3))]
    assert len(report[1].failed_case_ids) == 2
    assert [r.model.version for r in store.suites.report(last_versions=1)] == [2]
    # re-evaluating a model on the same suite version replaces its run
    store.suites.evaluate(C.ModelRef(name="multitask", version=1), [], preds(("foliage", 0.9), ("foliage", 0.9), ("foliage", 0.9)), True)
    assert [r.pass_rate for r in store.suites.report()] == [1.0, 1.0]


def test_evaluate_needs_predictions(store):
    register(store, 1)
    store.suites.upsert(suite_yaml(sid(0)))
    with pytest.raises(StoreError) as err:
        store.suites.evaluate(C.ModelRef(name="m", version=1), [], [], False)
    assert err.value.code == "FAILED_PRECONDITION"
    with pytest.raises(StoreError) as err:
        store.suites.evaluate(C.ModelRef(name="m"), [], [], False)
    assert err.value.code == "INVALID_ARGUMENT"
    with pytest.raises(StoreError) as err:
        store.suites.evaluate(C.ModelRef(name="m", version=1), ["nope"], [], False)
    assert err.value.code == "NOT_FOUND"
