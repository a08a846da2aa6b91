"""The gate's decision, case by case."""

from __future__ import annotations

import pytest

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.models.v1 import trainer_pb2 as T

from trainer.gate import InvalidWaiver, decide

CAND, BASE = C.ModelRef(name="m", version=3), C.ModelRef(name="m", version=2)


def result(suite: str, outcomes: dict[str, bool]) -> L.SuiteResult:
    r = L.SuiteResult(suite=suite, suite_version=1, total=len(outcomes))
    for cid, ok in outcomes.items():
        r.case_results.add(case_id=cid, passed=ok)
        r.passed += ok
    r.pass_rate = r.passed / r.total if r.total else 0.0
    return r


def test_a_case_that_passed_and_now_fails_blocks():
    report = decide(CAND, BASE, [result("s", {"a": True, "b": False, "c": True})], [result("s", {"a": True, "b": True, "c": False})])
    assert not report.accepted  # same pass rate, but b regressed
    assert list(report.suites[0].regressed_case_ids) == ["b"] and list(report.suites[0].fixed_case_ids) == ["c"]
    assert "1 case(s) regressed" in report.reasons[0]


def test_improvement_passes_and_records_fixed_cases():
    report = decide(CAND, BASE, [result("s", {"a": True, "b": True})], [result("s", {"a": True, "b": False})])
    assert report.accepted and list(report.suites[0].fixed_case_ids) == ["b"]
    assert report.suites[0].before_pass_rate == 0.5 and report.suites[0].after_pass_rate == 1.0


def test_case_waiver_and_suite_waiver_are_recorded():
    after, before = [result("s", {"a": False, "b": False}), result("t", {"x": False})], [result("s", {"a": True, "b": True}), result("t", {"x": True})]
    partial = decide(CAND, BASE, after, before, [T.Waiver(suite="s", case_id="a", reason="label was wrong")])
    assert not partial.accepted and list(partial.suites[0].waived_case_ids) == ["a"]
    full = decide(CAND, BASE, after, before, [T.Waiver(suite="s", case_id="a", reason="label was wrong"), T.Waiver(suite="s", case_id="b", reason="known"), T.Waiver(suite="t", reason="suite retired")])
    assert full.accepted
    assert {(w.suite, w.case_id) for w in full.waivers_applied} == {("s", "a"), ("s", "b"), ("t", "")}


def test_waiver_needs_a_reason():
    with pytest.raises(InvalidWaiver, match="reason"):
        decide(CAND, BASE, [], [], [T.Waiver(suite="s", reason="")])


def test_no_baseline_accepts_and_says_so():
    report = decide(CAND, None, [result("s", {"a": False})], None)
    assert report.accepted and "no baseline" in report.reasons[-1]


def test_empty_suite_cannot_block():
    assert decide(CAND, BASE, [result("s", {})], [result("s", {})]).accepted


def test_a_case_the_baseline_passed_only_by_chance_is_listed_not_blocking():
    before = [result("s", {"a": True, "b": True, "c": False})]
    after = [result("s", {"a": True, "b": False, "c": True})]
    moved = [[result("s", {"a": True, "b": False, "c": False})], [result("s", {"a": True, "b": True, "c": False})]]
    report = decide(CAND, BASE, after, before, (), moved)
    assert report.accepted, report.reasons
    (sg,) = report.suites
    assert list(sg.regressed_case_ids) == ["b"] and list(sg.unstable_case_ids) == ["b"]
    assert "1 lost that the baseline passed only by chance" in report.reasons[0]


def test_a_stable_case_lost_still_blocks_and_a_drop_made_of_chance_cases_blocks_too():
    before = [result("s", {"a": True, "b": True, "c": False})]
    moved = [[result("s", {"a": True, "b": False, "c": False})]]
    stable_lost = decide(CAND, BASE, [result("s", {"a": False, "b": True, "c": True})], before, (), moved)
    assert not stable_lost.accepted and "1 case(s) regressed" in stable_lost.reasons[0]
    assert list(stable_lost.suites[0].unstable_case_ids) == []
    net_drop = decide(CAND, BASE, [result("s", {"a": True, "b": False, "c": False})], before, (), moved)
    assert not net_drop.accepted
    assert net_drop.reasons == ["s: pass rate 33.3% < baseline 66.7%"]


def test_lost_names_the_cases_that_passed_before_and_fail_now():
    from trainer.gate import lost

    before = [result("s", {"a": True, "b": True, "c": False}), result("t", {"a": True})]
    after = [result("s", {"a": True, "b": False, "c": False}), result("t", {"a": False})]
    assert lost(after, before) == {("s", "b"), ("t", "a")}
    assert lost(before, before) == set()
