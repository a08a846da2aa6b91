"""`map_disagrees(...)` is the trigger language's alias of `map_disagreement(...)`, so map-vision
disagreements source data like any other trigger."""

from __future__ import annotations

import pytest

from longtail.fleet.v1 import fleet_pb2
from longtail.triggerlang import BUILTINS, EvalContext, FiringOptions, TriggerSyntaxError, compile_trigger
from longtail.triggerlang.catalogue import BUILTIN_ALIASES


def _frame(dets) -> fleet_pb2.Frame:
    frame = fleet_pb2.Frame(frame_id="car:1", vehicle_id="car", sequence=1)
    for cls, conf, rng, brg in dets:
        d = frame.detections.add(cls=cls, confidence=conf)
        if rng is not None:
            d.range_m = rng
        if brg is not None:
            d.bearing_rad = brg
    return frame


CASES = [
    ("(stop_sign)", [], [("stop_sign", 20.0, 0.1)], True),  # the map says sign, vision sees none
    ("(stop_sign, kind=missing)", [("stop_sign", 0.9, 20.0, 0.1)], [("stop_sign", 20.0, 0.1)], False),
    ("(stop_sign, kind=extra)", [("stop_sign", 0.9, 20.0, -0.5)], [("stop_sign", 20.0, 0.1)], True),
    ("(traffic_light, kind=extra, min_conf=0.8)", [("traffic_light", 0.7, 20.0, 0.0)], [], False),
    ("()", [("traffic_light", 0.9, None, None)], [("stop_sign", 30.0, 0.0)], True),
]


@pytest.mark.parametrize("args,dets,features,expected", CASES)
def test_alias_behaves_exactly_like_map_disagreement(args, dets, features, expected):
    every = FiringOptions(mode="every_frame")
    alias = compile_trigger("map_disagrees" + args, every)
    canonical = compile_trigger("map_disagreement" + args, every)
    assert alias.normalized == canonical.normalized  # one canonical spelling
    results = []
    for context in (None, EvalContext(map_features=features)):
        got = alias.step(alias.new_state(), _frame(dets), context)
        assert got == canonical.step(canonical.new_state(), _frame(dets), context)
        results.append(got)
    assert results == [False, expected]  # no map knowledge: never a disagreement


def test_alias_points_at_a_builtin_and_errors_still_suggest():
    assert BUILTIN_ALIASES["map_disagrees"] in BUILTINS
    with pytest.raises(TriggerSyntaxError) as err:
        compile_trigger("map_disagres(stop_sign)")
    assert "map_disagrees" in str(err.value) or "map_disagreement" in str(err.value)
    with pytest.raises(TriggerSyntaxError, match="kind"):
        compile_trigger("map_disagrees(stop_sign, kind=sideways)")
