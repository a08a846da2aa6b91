"""Semantics over sequences of frames: temporal built-ins, firing modes, min interval, capture
window, fire ids, map-vision disagreement, state persistence."""

from __future__ import annotations

import hashlib
import json
import math
import pickle

import pytest
from triggerlang_frames import VEHICLE, det, make_frame, standard_frame

from longtail.common.v1 import common_pb2
from longtail.mapvision.v1 import map_pb2
from longtail.triggerlang import (
    EvalContext,
    Fire,
    FiringOptions,
    MapExpectation,
    compile_trigger,
    fire_id,
    map_expectations,
)
from longtail.triggers.v1 import triggers_pb2

EVERY = FiringOptions(mode="every_frame")


def values(source: str, frames, contexts=None, options: FiringOptions = EVERY) -> list[bool | None]:
    """The predicate value on each frame (one car)."""
    trigger = compile_trigger(source, options)
    state = trigger.new_state()
    contexts = contexts or [None] * len(frames)
    return [trigger.step(state, f, c) for f, c in zip(frames, contexts)]


def presence(pattern: str, cls: str = "stop_sign") -> list:
    """'1010' -> frames 1..4 with/without a `cls` detection."""
    return [make_frame(i + 1, [cls] if ch == "1" else ["car"]) for i, ch in enumerate(pattern)]


# --- flicker -------------------------------------------------------------------------------------


def test_flicker_counts_toggles_of_presence_within_the_window():
    got = values("flicker(stop_sign, window=10, min_toggles=3)", presence("1101011111111111"))
    # toggles between frames 2-3, 3-4, 4-5, 5-6 (1-based); the 3rd one is on frame 5.
    assert got == [False] * 4 + [True] * 8 + [False] * 4
    # frame 12: window = frames 3..12 holds toggles 3-4, 4-5, 5-6; frame 13: only 2 of them.


def test_flicker_needs_the_toggles_inside_the_window():
    slow = "111000111000"  # toggles 3-4, 6-7, 9-10: three toggles span frames 3..10, 8 frames
    assert not any(values("flicker(stop_sign, window=7, min_toggles=3)", presence(slow)))
    assert values("flicker(stop_sign, window=8, min_toggles=3)", presence(slow)) == [False] * 9 + [True] + [False] * 2


def test_flicker_min_conf_and_condition_selector():
    frames = [make_frame(i + 1, [det("stop_sign", conf)]) for i, conf in enumerate([0.9, 0.2, 0.9, 0.2, 0.9])]
    assert values("flicker(stop_sign, window=5, min_toggles=3)", frames)[-1] is False  # always present
    assert values("flicker(stop_sign, window=5, min_toggles=3, min_conf=0.5)", frames)[-1] is True
    assert values("flicker(d.cls == stop_sign and d.conf > 0.5, window=5, min_toggles=4)", frames)[-1] is True


def test_flicker_windows_follow_frame_sequence_numbers():
    # Frames 1, 2, 3 and then 40, 41: the gap pushes the early toggles out of the window.
    seqs_present = [(1, True), (2, False), (3, True), (40, False), (41, True)]
    frames = [make_frame(s, ["stop_sign"] if p else []) for s, p in seqs_present]
    assert values("flicker(stop_sign, window=10, min_toggles=2)", frames) == [False, False, True, False, False]


def test_flicker_history_is_kept_when_short_circuited():
    # `ego.speed > 20` is false for the first frames, so `and` never reaches flicker; its updater
    # still sees every frame, so the toggles are there when speed goes up.
    frames = presence("10101")
    for f in frames[:4]:
        f.ego.speed = 5.0
    frames[4].ego.speed = 25.0
    assert values("ego.speed > 20 and flicker(stop_sign, window=10, min_toggles=3)", frames) == [False] * 4 + [True]


# --- track_flicker -------------------------------------------------------------------------------


def test_track_flicker_counts_class_changes_of_one_track():
    classes = ["stop_sign", "stop_sign", "yield_sign", "stop_sign", "stop_sign"] + ["stop_sign"] * 10
    frames = [make_frame(i + 1, [det(c, track=5), det("car", track=6)]) for i, c in enumerate(classes)]
    got = values("track_flicker(window=10, min_changes=2)", frames)
    # changes on frames 3 and 4; true while the earliest of them (prev frame 2) is in the window.
    assert got[:3] == [False, False, False]
    assert got[3:11] == [True] * 8
    assert got[11:] == [False] * 4
    # Only changes involving the class count when one is given.
    assert any(values("track_flicker(yield_sign, window=10, min_changes=2)", frames))
    assert not any(values("track_flicker(traffic_light, window=10, min_changes=2)", frames))


def test_track_flicker_ignores_untracked_and_different_tracks():
    frames = [make_frame(i + 1, [det(c, track=0)]) for i, c in enumerate(["a", "b", "a", "b"])]
    assert not any(values("track_flicker(window=10, min_changes=1)", frames))
    frames = [make_frame(i + 1, [det(c, track=i + 1)]) for i, c in enumerate(["a", "b", "a", "b"])]
    assert not any(values("track_flicker(window=10, min_changes=1)", frames))


def test_track_memory_is_bounded():
    trigger = compile_trigger("track_flicker(window=1000, min_changes=1) or first_seen(x).count > 0")
    state = trigger.new_state()
    for i in range(1, 400):
        trigger.step(state, make_frame(i, [det("x", track=t) for t in range(i * 3, i * 3 + 3)]))
    assert all(len(slot.tracks) <= 64 for slot in state.slots)


# --- first_seen (surprise) -----------------------------------------------------------------------


def test_first_seen_fires_when_a_new_track_is_already_close():
    frames = [
        make_frame(1, [det("stop_sign", track=1, range_m=10.0)]),  # first frame of the state: seeds memory only
        make_frame(2, [det("stop_sign", track=1, range_m=9.0)]),
        make_frame(3, [det("stop_sign", track=1, range_m=8.0), det("stop_sign", track=2, range_m=15.0, bearing=0.2)]),
        make_frame(4, [det("stop_sign", track=2, range_m=14.0)]),
        make_frame(5, [det("stop_sign", track=3, range_m=60.0)]),  # new, but far: not a surprise
        make_frame(6, [det("car", track=4, range_m=5.0)]),  # close, but not the class
    ]
    assert values("first_seen(stop_sign).distance < 20", frames) == [False, False, True, False, False, False]
    assert values("first_seen(stop_sign).count == 1", frames) == [False, False, True, False, True, False]
    assert values("first_seen(stop_sign).bearing > 0.19 and first_seen(stop_sign).bearing < 0.21", frames)[2]
    assert values("first_seen(stop_sign).conf > 0.8", frames) == [False, False, True, False, True, False]
    assert values("first_seen().distance < 6", frames)[5] is True


def test_first_seen_track_unseen_for_a_window_counts_again():
    frames = [make_frame(1, ["car"]), make_frame(2, [det("stop_sign", track=9, range_m=5.0)])]
    frames += [make_frame(i, ["car"]) for i in range(3, 8)]
    frames += [make_frame(8, [det("stop_sign", track=9, range_m=5.0)])]
    assert values("first_seen(stop_sign, window=5).distance < 20", frames)[-1] is True
    assert values("first_seen(stop_sign, window=6).distance < 20", frames)[-1] is False


def test_first_seen_untracked_class_reappearing_after_absence():
    frames = [make_frame(1, ["car"]), make_frame(2, [det("stop_sign", range_m=12.0)]), make_frame(3, [det("stop_sign", range_m=11.0)])]
    frames += [make_frame(i, ["car"]) for i in range(4, 7)] + [make_frame(7, [det("stop_sign", range_m=10.0)])]
    assert values("first_seen(stop_sign, window=2).distance < 20", frames) == [False, True, False, False, False, False, True]


def test_first_seen_without_range_is_unknown():
    frames = [make_frame(1, []), make_frame(2, [det("stop_sign", track=1)])]
    assert values("first_seen(stop_sign).distance < 20", frames) == [False, False]
    assert values("first_seen(stop_sign).count > 0", frames) == [False, True]


# --- sustained / within ---------------------------------------------------------------------------


def test_sustained_and_within():
    frames = presence("0111011110")
    assert values("sustained(any(stop_sign), frames=3)", frames) == [False, False, False, True, False, False, False, True, True, False]
    assert values("within(any(stop_sign), frames=2)", presence("1000100")) == [True, True, False, False, True, True, False]
    # "a stop sign was seen within 5 frames and is gone now"
    got = values("within(any(stop_sign), frames=5) and not any(stop_sign)", presence("1100000"))
    assert got == [False, False, True, True, True, True, False]


# --- map-vision disagreement ---------------------------------------------------------------------


def ctx(*features) -> EvalContext:
    return EvalContext(map_features=list(features))


@pytest.mark.parametrize(
    "source,dets,features,expected",
    [
        # no map knowledge: never a disagreement
        ("map_disagreement(stop_sign)", [], None, False),
        # map and vision agree (within bearing and range tolerance)
        ("map_disagreement(stop_sign)", [det("stop_sign", 0.9, range_m=21.0, bearing=0.12)], [("stop_sign", 20.0, 0.1)], False),
        # map says sign, vision sees nothing -> missing
        ("map_disagreement(stop_sign)", [det("car")], [("stop_sign", 20.0, 0.1)], True),
        ("map_disagreement(stop_sign, kind=missing)", [det("car")], [("stop_sign", 20.0, 0.1)], True),
        ("map_disagreement(stop_sign, kind=extra)", [det("car")], [("stop_sign", 20.0, 0.1)], False),
        # a weak detection does not count as seeing it
        ("map_disagreement(stop_sign, kind=missing)", [det("stop_sign", 0.3, range_m=20.0, bearing=0.1)], [("stop_sign", 20.0, 0.1)], True),
        ("map_disagreement(stop_sign, kind=missing, min_conf=0.2)", [det("stop_sign", 0.3, range_m=20.0, bearing=0.1)], [("stop_sign", 20.0, 0.1)], False),
        # wrong place: vision's sign is not the map's sign -> both directions disagree
        ("map_disagreement(stop_sign, kind=missing)", [det("stop_sign", 0.9, range_m=20.0, bearing=-0.5)], [("stop_sign", 20.0, 0.1)], True),
        ("map_disagreement(stop_sign, kind=extra)", [det("stop_sign", 0.9, range_m=20.0, bearing=-0.5)], [("stop_sign", 20.0, 0.1)], True),
        ("map_disagreement(stop_sign, bearing_tol=1.0)", [det("stop_sign", 0.9, range_m=20.0, bearing=-0.5)], [("stop_sign", 20.0, 0.1)], False),
        ("map_disagreement(stop_sign)", [det("stop_sign", 0.9, range_m=35.0, bearing=0.1)], [("stop_sign", 20.0, 0.1)], True),
        ("map_disagreement(stop_sign, range_tol=20)", [det("stop_sign", 0.9, range_m=35.0, bearing=0.1)], [("stop_sign", 20.0, 0.1)], False),
        # unknown range/bearing on the detection: matched on class alone
        ("map_disagreement(stop_sign)", [det("stop_sign", 0.9)], [("stop_sign", 20.0, 0.1)], False),
        # vision sees a confident sign the map does not have -> extra
        ("map_disagreement(stop_sign)", [det("stop_sign", 0.9, range_m=20.0)], [], True),
        ("map_disagreement(stop_sign, kind=extra)", [det("stop_sign", 0.9, range_m=20.0)], [], True),
        ("map_disagreement(stop_sign, kind=missing)", [det("stop_sign", 0.9, range_m=20.0)], [], False),
        ("map_disagreement(stop_sign)", [det("stop_sign", 0.4, range_m=20.0)], [], False),  # not confident
        # other classes are not compared
        ("map_disagreement(stop_sign)", [det("traffic_light", 0.9)], [("traffic_light", 30.0, 0.0)], False),
        ("map_disagreement()", [det("traffic_light", 0.9)], [("stop_sign", 30.0, 0.0)], True),
        ("map_disagreement(traffic_light)", [], [("traffic_light", 30.0, 0.0)], True),
    ],
)
def test_map_disagreement(source, dets, features, expected):
    context = None if features is None else ctx(*features)
    assert values(source, [make_frame(1, dets)], [context]) == [expected]


def test_eval_context_accepts_tuples_dicts_and_objects():
    class Feature:
        cls, range_m, bearing_rad = "stop_sign", 20.0, 0.1

    context = EvalContext(map_features=[("stop_sign", 20.0, 0.1), {"cls": "stop_sign", "range_m": 5}, Feature(), ("stop_sign",)])
    assert context.map_features[0] == MapExpectation("stop_sign", 20.0, 0.1)
    assert context.map_features[1].range_m == 5.0 and math.isnan(context.map_features[1].bearing_rad)
    assert context.map_features[2] == MapExpectation("stop_sign", 20.0, 0.1)
    assert math.isnan(context.map_features[3].range_m)
    with pytest.raises(ValueError):
        EvalContext(map_features=[(1, 2, 3)])


def test_map_expectations_from_map_features():
    ego = common_pb2.Pose(x=0.0, y=0.0, heading=0.0)
    facing_car = map_pb2.MapFeature(feature_id="a", kind=map_pb2.FEATURE_KIND_STOP_SIGN, x=20.0, y=2.0, heading=math.pi)
    facing_away = map_pb2.MapFeature(feature_id="b", kind=map_pb2.FEATURE_KIND_STOP_SIGN, x=20.0, y=-2.0, heading=0.0)
    behind = map_pb2.MapFeature(feature_id="c", kind=map_pb2.FEATURE_KIND_TRAFFIC_LIGHT, x=-20.0, y=0.0, heading=0.0)
    far = map_pb2.MapFeature(feature_id="d", kind=map_pb2.FEATURE_KIND_TRAFFIC_LIGHT, x=200.0, y=0.0, heading=math.pi)
    removed = map_pb2.MapFeature(feature_id="e", kind=map_pb2.FEATURE_KIND_STOP_SIGN, x=10.0, y=0.0, heading=math.pi, removed=True)
    got = map_expectations([facing_car, facing_away, behind, far, removed], ego)
    assert len(got) == 1
    assert got[0].cls == "stop_sign" and abs(got[0].range_m - math.hypot(20, 2)) < 1e-9 and got[0].bearing_rad > 0


# --- firing: modes, interval, capture window, ids ------------------------------------------------


def run(source: str, options: FiringOptions, frames, trigger_id="t-1", version=3) -> list[Fire | None]:
    trigger = compile_trigger(source, options, trigger_id=trigger_id, version=version)
    state = trigger.new_state()
    return [trigger.evaluate(state, f) for f in frames]


def test_rising_edge_fires_once_per_false_to_true_transition():
    fires = run("any(stop_sign)", FiringOptions(), presence("0111001101"))
    assert [f is not None for f in fires] == [False, True, False, False, False, False, True, False, False, True]


def test_every_frame_fires_on_every_true_frame():
    fires = run("any(stop_sign)", FiringOptions(mode="every_frame"), presence("0111001101"))
    assert [f is not None for f in fires] == [c == "1" for c in "0111001101"]


def test_rising_edge_on_the_first_frame_fires():
    assert run("any(stop_sign)", FiringOptions(), presence("1"))[0] is not None


def test_min_interval_uses_the_frames_clock_per_car():
    # 10 fps: frames are 0.1 s apart; a 0.35 s interval lets every 4th true frame through.
    fires = run("any(stop_sign)", FiringOptions(mode="every_frame", min_interval_s=0.35), presence("1" * 10))
    assert [i for i, f in enumerate(fires) if f] == [0, 4, 8]
    # The interval is on captured_at, not wall time: far-apart timestamps all fire.
    frames = [make_frame(i + 1, ["stop_sign"], t=100.0 * i) for i in range(3)]
    assert all(run("any(stop_sign)", FiringOptions(mode="every_frame", min_interval_s=60), frames))


def test_rising_edge_suppressed_by_the_interval_is_not_remembered():
    frames = presence("1010101")  # t = 0.1, 0.2, ..., 0.7
    fires = run("any(stop_sign)", FiringOptions(min_interval_s=0.45), frames)
    assert [i for i, f in enumerate(fires) if f] == [0, 6]  # 0.1 fires; 0.3 and 0.5 are < 0.45 s later; 0.7 is 0.6 s later


def test_clock_going_backwards_restarts_the_interval():
    frames = [make_frame(1, ["stop_sign"], t=1000.0), make_frame(2, ["stop_sign"], t=10.0), make_frame(3, ["stop_sign"], t=10.5)]
    fires = run("any(stop_sign)", FiringOptions(mode="every_frame", min_interval_s=60), frames)
    assert [f is not None for f in fires] == [True, True, False]


def test_fire_fields_and_capture_window():
    options = FiringOptions(mode="every_frame", frames_before=5, frames_after=3)
    fire = run("any(stop_sign)", options, [make_frame(42, ["stop_sign"])], trigger_id="occluded-stop", version=7)[0]
    assert fire == Fire(
        trigger_id="occluded-stop",
        version=7,
        frame_id=f"{VEHICLE}:42",
        vehicle_id=VEHICLE,
        sequence=42,
        frames_before=5,
        frames_after=3,
        fire_id=hashlib.sha256(f"occluded-stop/7/{VEHICLE}/{VEHICLE}:42".encode()).hexdigest(),
    )
    assert fire.fire_id == fire_id("occluded-stop", 7, VEHICLE, f"{VEHICLE}:42")
    edge = fire.to_edge_fire()
    assert (edge.trigger_id, edge.trigger_version, edge.fire_id) == ("occluded-stop", 7, fire.fire_id)


def test_fire_id_is_deterministic_across_states_and_retries():
    frames = presence("0110")
    a = [f.fire_id for f in run("any(stop_sign)", FiringOptions(), frames) if f]
    b = [f.fire_id for f in run("any(stop_sign)", FiringOptions(), frames) if f]
    assert a == b and len(a) == 1 and len(a[0]) == 64


def test_stale_and_duplicate_frames_are_ignored():
    trigger = compile_trigger("any(stop_sign)", EVERY)
    state = trigger.new_state()
    f5 = make_frame(5, ["stop_sign"])
    assert trigger.evaluate(state, f5) is not None
    assert trigger.evaluate(state, f5) is None  # re-sent duplicate: no second fire
    assert trigger.evaluate(state, make_frame(4, ["stop_sign"])) is None
    assert state.frames == 1
    assert trigger.evaluate(state, make_frame(6, ["stop_sign"])) is not None


def test_a_first_frame_numbered_zero_replayed_later_is_stale():
    """A car numbering from 0: after frames 1, 2 a redelivered frame 0 must not rewind the state
    (it would leave prev_value true and swallow the next rising edge)."""
    trigger = compile_trigger("any(stop_sign)")  # rising edge
    state = trigger.new_state()
    fires = [trigger.evaluate(state, make_frame(seq, signs)) is not None for seq, signs in [(0, ["stop_sign"]), (1, []), (2, ["stop_sign"]), (3, [])]]
    assert fires == [True, False, True, False]
    assert trigger.evaluate(state, make_frame(0, ["stop_sign"])) is None
    assert trigger.evaluate(state, make_frame(4, ["stop_sign"])) is not None


def test_frames_without_sequence_are_counted():
    trigger = compile_trigger("sustained(any(stop_sign), frames=3)", EVERY)
    state = trigger.new_state()
    got = [trigger.evaluate(state, make_frame(0, ["stop_sign"])) is not None for _ in range(4)]
    assert got == [False, False, True, True]


def test_a_state_belongs_to_one_car():
    trigger = compile_trigger("any(stop_sign)")
    state = trigger.new_state()
    trigger.evaluate(state, make_frame(1, ["stop_sign"], vehicle="car-1"))
    with pytest.raises(ValueError, match="belongs to vehicle"):
        trigger.evaluate(state, make_frame(2, ["stop_sign"], vehicle="car-2"))


def test_states_are_independent_per_car():
    trigger = compile_trigger("flicker(stop_sign, window=10, min_toggles=2)", EVERY)
    a, b = trigger.new_state(), trigger.new_state()
    for i, ch in enumerate("101"):
        trigger.step(a, make_frame(i + 1, ["stop_sign"] if ch == "1" else [], vehicle="a"))
        trigger.step(b, make_frame(i + 1, ["stop_sign"], vehicle="b"))
    assert trigger.step(a, make_frame(4, ["stop_sign"], vehicle="a")) is True
    assert trigger.step(b, make_frame(4, ["stop_sign"], vehicle="b")) is False


# --- options <-> protobuf -----------------------------------------------------------------------


def test_firing_options_map_one_to_one_to_the_trigger_spec():
    options = FiringOptions(mode="every_frame", min_interval_s=12.25, frames_before=4, frames_after=6)
    spec = triggers_pb2.TriggerSpec()
    options.apply_to_spec(spec)
    assert spec.firing_mode == triggers_pb2.FIRING_MODE_EVERY_FRAME
    assert (spec.min_interval.seconds, spec.min_interval.nanos) == (12, 250_000_000)
    assert (spec.capture_window.frames_before, spec.capture_window.frames_after) == (4, 6)
    assert FiringOptions.from_spec(spec) == options
    assert FiringOptions.from_spec(triggers_pb2.TriggerSpec()) == FiringOptions()  # UNSPECIFIED = rising edge
    assert options.capture_window() == triggers_pb2.CaptureWindow(frames_before=4, frames_after=6)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "sometimes"}, {"min_interval_s": -1}, {"min_interval_s": math.inf}, {"min_interval_s": "1"}, {"frames_before": -1}, {"frames_after": 1001}, {"frames_before": 1.5}, {"frames_after": True}],
)
def test_invalid_firing_options(kwargs):
    with pytest.raises(ValueError):
        FiringOptions(**kwargs)


def test_compile_trigger_checks_the_options_type():
    with pytest.raises(TypeError):
        compile_trigger("true", {"mode": "every_frame"})


# --- state persistence and size ------------------------------------------------------------------

TEMPORAL = "flicker(stop_sign, window=10, min_toggles=2) or track_flicker(window=10, min_changes=1) or first_seen(stop_sign).distance < 20 or sustained(any(car), frames=3) or within(any(bus), frames=4)"


def test_state_round_trips_through_json_and_pickle():
    trigger = compile_trigger(TEMPORAL, EVERY)
    frames = [make_frame(i + 1, [det("stop_sign" if i % 2 else "yield_sign", track=3, range_m=30.0 - i), det("car")]) for i in range(12)]
    live = trigger.new_state()
    for f in frames[:6]:
        trigger.evaluate(live, f)
    restored = trigger.load_state(json.loads(json.dumps(trigger.dump_state(live))))
    unpickled = pickle.loads(pickle.dumps(live))
    rest = [[trigger.evaluate(s, f) for f in frames[6:]] for s in (live, restored, unpickled)]
    assert rest[0] == rest[1] == rest[2]
    # A snapshot of another trigger gives a fresh state, never a corrupted one.
    other = compile_trigger("flicker(stop_sign)")
    assert other.load_state(trigger.dump_state(live)).frames == 0
    assert trigger.load_state(None).frames == 0


def test_evaluation_does_not_keep_the_frame():
    trigger = compile_trigger("any(d.cls == a and count(b) > 0)")
    state = trigger.new_state()
    trigger.evaluate(state, standard_frame())
    assert state.frame is None and state.dets is None and state.ctx is None and state.memo is None


def test_huge_numbers_overflow_to_infinity_not_to_an_exception():
    product = "*".join(["(d.track * d.track * d.track * d.track)"] * 8)
    frame = make_frame(1, [det("x", track=2**63)])
    assert values(f"any({product} * 0.5 > 1e300)", [frame]) == [True]
    assert values(f"any({product} / 1e-300 - {product} > 0)", [frame]) == [False]  # inf - inf is unknown
    counts = "*".join(["(count() * count() * count() * count())"] * 12)
    assert values(f"{counts} * 1.5 > 0", [make_frame(1, ["a"] * 1000)]) == [True]
