"""The column backend (`longtail.triggerlang.vector`) against the frame-by-frame engine: for any
well-typed triggers and any frames, the same fires in the same order and the same states."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_triggerlang_fuzz import DETECTIONS, FLOAT32, FRAME_BOOL
from triggerlang_frames import det, make_frame

from longtail.triggerlang import FiringOptions, compile_trigger
from longtail.triggerlang.vector import BatchEvaluator, CarFrames, last_true

TEMPORAL = st.one_of(
    st.tuples(st.sampled_from(["stop_sign", "car"]), st.integers(2, 6), st.integers(1, 5)).filter(lambda t: t[2] < t[1]).map(lambda t: f"flicker({t[0]}, window={t[1]}, min_toggles={t[2]})"),
    st.tuples(FRAME_BOOL, st.integers(1, 4)).map(lambda t: f"sustained({t[0]}, frames={t[1]})"),
    st.tuples(FRAME_BOOL, st.integers(1, 4)).map(lambda t: f"within({t[0]}, frames={t[1]})"),
)
EXPRESSIONS = st.one_of(FRAME_BOOL, TEMPORAL, st.tuples(TEMPORAL, FRAME_BOOL).map(lambda t: f"{t[0]} or {t[1]}"))
OPTIONS = st.builds(FiringOptions, mode=st.sampled_from(["rising_edge", "every_frame"]), min_interval_s=st.sampled_from([0.0, 0.15, 0.5]))
# A car's frames as they arrive: mostly increasing sequences, with gaps, repeats, replays and
# now and then an unnumbered frame (0) or a clock going backwards.
FRAME_SPECS = st.lists(
    st.tuples(
        st.sampled_from([1] * 12 + [2, 3, -2, -5, "unnumbered"]), DETECTIONS, st.floats(allow_nan=True, width=32) | st.just(12.0), st.dictionaries(st.sampled_from(["a@1", "b"]), FLOAT32), st.sampled_from([None, None, None, 0.05, 3.0])
    ),
    min_size=4,
    max_size=30,
)


def build_car(vehicle: str, specs) -> list:
    frames, seq = [], 0
    for step, dets, speed, scores, t in specs:
        seq = max(seq + step, 1) if step != "unnumbered" else seq
        frames.append(make_frame(0 if step == "unnumbered" else seq, dets, speed=speed, scores=scores, vehicle=vehicle, t=t))
    return frames


def frame_by_frame(triggers, cars_frames, states):
    fires = []
    for c, frames in enumerate(cars_frames):
        for i, frame in enumerate(frames):
            for t, trigger in enumerate(triggers):
                fire = trigger.evaluate(states[c][t], frame)
                if fire is not None:
                    fires.append((c, i, t, fire))
    return fires


def columns(triggers, cars_frames, states):
    evaluator = BatchEvaluator(triggers)
    return [(f.car, f.frame, f.trigger, f.fire) for f in evaluator.run([CarFrames(frames, states[c]) for c, frames in enumerate(cars_frames)])]


def dumped(triggers, states):
    return [[t.dump_state(s) for t, s in zip(triggers, car)] for car in states]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(EXPRESSIONS, OPTIONS), min_size=1, max_size=5), st.lists(FRAME_SPECS, min_size=1, max_size=3), st.integers(1, 3))
def test_the_column_backend_fires_and_remembers_exactly_like_frame_by_frame(sources, cars, batches):
    triggers = [compile_trigger(source, options, trigger_id=f"t{i}", version=1) for i, (source, options) in enumerate(sources)]
    cars_frames = [build_car(f"car-{c}", specs) for c, specs in enumerate(cars)]
    expected_states = [[t.new_state() for t in triggers] for _ in cars_frames]
    states = copy.deepcopy(expected_states)
    # The same frames in `batches` consecutive batches: the scans continue from the states.
    for b in range(batches):
        part = [frames[b * len(frames) // batches : (b + 1) * len(frames) // batches] for frames in cars_frames]
        expected = frame_by_frame(triggers, part, expected_states)
        assert columns(triggers, part, states) == expected
        assert dumped(triggers, states) == dumped(triggers, expected_states)


def test_a_trigger_added_mid_drive_and_a_replayed_batch():
    old = compile_trigger("flicker(stop_sign, window=6, min_toggles=2) or sustained(ego.speed > 11, frames=3)", FiringOptions(mode="every_frame", min_interval_s=0.5), trigger_id="old", version=1)
    new = compile_trigger("within(any(stop_sign), frames=2)", FiringOptions(mode="every_frame"), trigger_id="new", version=1)
    frames = [make_frame(s, ["stop_sign"] if s % 3 else [], speed=10 + s % 4) for s in range(1, 31)]
    reference = [old.new_state(), new.new_state()]
    states = [old.new_state(), new.new_state()]
    for frame in frames[:10]:
        old.evaluate(reference[0], frame)
        old.evaluate(states[0], frame)
    # `new` starts at frame 11; then frames 6..20 arrive again (a redelivery) and 21..30.
    batch = frames[5:20] + frames[20:]
    expected = frame_by_frame([old, new], [batch], [reference])
    got = columns([old, new], [batch], [states])
    assert got == expected and any(t == 1 for _, _, t, _ in got) and any(t == 0 for _, _, t, _ in got)
    assert dumped([old, new], [states]) == dumped([old, new], [reference])


def test_shared_subexpressions_are_computed_once(monkeypatch):
    from longtail.triggerlang import vector

    triggers = [compile_trigger(f"count(stop_sign) >= {k} and ego.speed > 5", trigger_id=f"t{k}") for k in range(1, 6)]
    frames = [make_frame(s, [det("stop_sign")] * (s % 4)) for s in range(1, 21)]
    counted = []
    real = vector._Evaluator.v_count
    monkeypatch.setattr(vector._Evaluator, "v_count", lambda self, tree: counted.append(tree) or real(self, tree))
    states = [[t.new_state() for t in triggers]]
    expected = frame_by_frame(triggers, [frames], copy.deepcopy(states))
    assert columns(triggers, [frames], states) == expected and expected
    assert len(counted) == 1  # five triggers, one count(stop_sign)


def test_track_and_map_built_ins_run_frame_by_frame_beside_the_columns():
    evaluator = BatchEvaluator([compile_trigger("any(car)"), compile_trigger("first_seen(car).count > 0"), compile_trigger("map_disagreement(stop_sign)")])
    assert evaluator.columnar == [0] and evaluator.frame_by_frame == [1, 2]
    numbered = [make_frame(s, ["car"]) for s in range(1, 11)]
    unnumbered = [make_frame(0, ["car"], vehicle="old-car") for _ in range(4)]
    evaluator.run([CarFrames(numbered, [t.new_state() for t in evaluator.triggers]), CarFrames(unnumbered, [t.new_state() for t in evaluator.triggers])])
    assert evaluator.evaluations == {"columns": 10 * 1, "frame_by_frame": 10 * 2 + 4 * 3}


def test_last_true_stays_inside_each_car():
    flag = np.array([True, False, False, True, False, False])
    seg_first = np.array([0, 0, 2, 2, 4, 4])
    assert last_true(flag, seg_first).tolist() == [0, 0, -1, 3, -1, -1]
