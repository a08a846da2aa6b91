"""A car's shadow-mode report is validated like telemetry: the first bad field, by name."""

from __future__ import annotations

import pytest

from longtail.common.v1 import common_pb2 as C
from longtail.fleet.v1 import fleet_pb2 as F

from gateway.validation import InvalidFrame, validate_shadow_disagreement


def report(**changes):
    r = F.ShadowDisagreement(frame_id="car-1:7", production=C.ModelRef(name="m", version=1), candidate=C.ModelRef(name="m", version=2), task="stop_sign", frames_compared=7)
    r.differences.add(kind=F.SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE, candidate=C.Detection(cls="stop_sign", confidence=0.9))
    for key, value in changes.items():
        setattr(r, key, value) if not isinstance(value, C.ModelRef) else getattr(r, key).CopyFrom(value)
    return r


def test_a_well_formed_report_and_a_bare_frame_count_pass():
    validate_shadow_disagreement(report(), "car-1")
    validate_shadow_disagreement(F.ShadowDisagreement(production=C.ModelRef(name="m", version=1), candidate=C.ModelRef(name="m", version=2), frames_compared=200), "car-1")


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"candidate": C.ModelRef(name="m", version=0)}, "shadow_disagreement.candidate"),
        ({"frame_id": "car-2:7"}, "shadow_disagreement.frame_id"),
        ({"task": ""}, "shadow_disagreement.task"),
    ],
)
def test_bad_reports_name_the_field(changes, field):
    with pytest.raises(InvalidFrame) as exc:
        validate_shadow_disagreement(report(**changes), "car-1")
    assert exc.value.field == field


def test_non_finite_scores_in_a_difference_are_refused():
    r = report()
    r.differences[0].candidate.confidence = float("nan")
    with pytest.raises(InvalidFrame) as exc:
        validate_shadow_disagreement(r, "car-1")
    assert exc.value.field.endswith(".confidence")
    r = report()
    r.differences[0].kind = F.SHADOW_DIFFERENCE_KIND_UNSPECIFIED
    with pytest.raises(InvalidFrame, match="kind"):
        validate_shadow_disagreement(r, "car-1")
