"""The evaluate stage on one poll, without Kafka: records of several cars interleaved, a
malformed record, edge fires, and the frame-by-frame fallback. The integration test
(tests/integration/test_fleet_side_triggers.py) runs the same code on a real broker."""

from __future__ import annotations

from longtail import streams
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2
from longtail.triggerlang import FiringOptions, compile_trigger
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2 as S

from trigger_evaluator import fleet_worker

TRIGGERS = {
    "stop": "any(stop_sign) and ego.speed > 5",
    "flick": "flicker(stop_sign, window=4, min_toggles=2)",
    "new": "first_seen(stop_sign).count > 0",  # runs frame by frame beside the columns
}


class Msg:
    def __init__(self, partition: int, offset: int, value: bytes) -> None:
        self._partition, self._offset, self._value = partition, offset, value

    def partition(self):
        return self._partition

    def offset(self):
        return self._offset

    def key(self):
        return b"k"

    def value(self):
        return self._value

    def topic(self):
        return "fleet.telemetry.v1"


class Table:
    def __init__(self) -> None:
        self.data: dict = {}

    def get(self, partition, key):
        return self.data.get((partition, key)) or {}

    def set(self, partition, key, value):
        self.data[(partition, key)] = value


class Outputs:
    def __init__(self) -> None:
        self.candidates: list[trigger_events.TriggerFired] = []

    def produce_bytes(self, topic, key, value):
        self.candidates.append(trigger_events.TriggerFired.FromString(value))


class Stage:
    def __init__(self) -> None:
        self.dead: list[tuple[int, str]] = []

    def dead_letter(self, msg, exc):
        self.dead.append((msg.offset(), str(exc)))

    each = streams.Stage.each


def catalog() -> dict[str, S.Trigger]:
    return {tid: S.Trigger(trigger_id=tid, version=1, state=S.TRIGGER_STATE_ACTIVE, spec=S.TriggerSpec(name=tid, expression=expr, site=S.TRIGGER_SITE_FLEET)) for tid, expr in TRIGGERS.items()}


def worker() -> fleet_worker.FleetWorker:
    w = fleet_worker.FleetWorker.__new__(fleet_worker.FleetWorker)  # no Kafka: tables and outputs are fakes
    w.compiled, w.map_view, w.car_states, w.producer = fleet_worker.CompiledCatalog(catalog), None, Table(), Outputs()
    w.candidates_topic, w._frames = "candidates", fleet_worker.FRAMES.labels("test")
    return w


def record(vehicle: str, first: int, frames: int, edge_at: int | None = None) -> bytes:
    batch = fleet_events.TelemetryBatchEvent(vehicle_id=vehicle)
    for seq in reversed(range(first, first + frames)):  # out of order inside the record
        frame = batch.frames.add(frame_id=f"{vehicle}:{seq}", vehicle_id=vehicle, sequence=seq)
        frame.captured_at.FromMilliseconds(seq * 100)
        frame.ego.speed = 10.0
        if seq % 3:
            frame.detections.add(cls="stop_sign", confidence=0.9, track_id=seq // 6 + 1)
        if seq == edge_at:
            frame.edge_fires.add(trigger_id="edge", trigger_version=2, fire_id=f"edge-{vehicle}-{seq}", score=0.5)
    return batch.SerializeToString()


def poll() -> list[Msg]:
    return [Msg(0, 0, record("a", 1, 10)), Msg(1, 0, record("b", 1, 10, edge_at=4)), Msg(0, 1, b"\xff not a batch"), Msg(0, 2, record("a", 11, 10)), Msg(1, 1, record("b", 11, 10))]


def expected_candidates() -> list[tuple[str, str]]:
    """What evaluating record by record, frame by frame (the engine's reference) produces."""
    programs = {tid: compile_trigger(expr, FiringOptions(), tid, 1) for tid, expr in TRIGGERS.items()}
    states: dict = {}
    out = []
    for msg in poll():
        try:
            batch = fleet_events.TelemetryBatchEvent.FromString(msg.value())
        except Exception:
            continue
        for frame in sorted(batch.frames, key=lambda f: f.sequence):
            for tid, program in programs.items():
                state = states.setdefault((batch.vehicle_id, tid), program.new_state())
                if program.evaluate(state, frame) is not None:
                    out.append((tid, frame.frame_id))
            out.extend((e.trigger_id, frame.frame_id) for e in frame.edge_fires)
    return out


def test_a_poll_gives_the_candidates_of_record_by_record_evaluation_in_the_same_order():
    w, stage = worker(), Stage()
    w.evaluate_poll(poll(), stage)
    got = [(c.trigger_id, c.frame_id) for c in w.producer.candidates]
    assert got == expected_candidates() and {t for t, _ in got} == {"stop", "flick", "new", "edge"}
    assert [offset for offset, _ in stage.dead] == [1]  # the malformed record, dead-lettered; the rest evaluated
    edge = next(c for c in w.producer.candidates if c.trigger_id == "edge")
    assert edge.source == trigger_events.FIRE_SOURCE_EDGE and edge.score == 0.5
    assert set(w.car_states.data) == {(0, "a"), (1, "b")}
    assert w.car_states.data[(0, "a")]["stop"]["last_seq"] == 20


def test_when_the_column_path_fails_the_records_are_evaluated_frame_by_frame(monkeypatch):
    w, stage = worker(), Stage()
    real_run = fleet_worker.BatchEvaluator.run

    def broken(self, cars, columns=True):
        if columns:
            raise RuntimeError("bug on the fast path")
        return real_run(self, cars, columns)

    monkeypatch.setattr(fleet_worker.BatchEvaluator, "run", broken)
    w.evaluate_poll(poll(), stage)
    assert [(c.trigger_id, c.frame_id) for c in w.producer.candidates] == expected_candidates()
    assert [offset for offset, _ in stage.dead] == [1]


def test_a_replayed_poll_fires_nothing_again():
    w, stage = worker(), Stage()
    w.evaluate_poll(poll(), stage)
    first = len(w.producer.candidates)
    w.evaluate_poll(poll(), stage)
    replayed = w.producer.candidates[first:]
    assert [c.trigger_id for c in replayed] == ["edge"]  # edge fires are passed on again; decide drops the repeat by fire id


def test_frames_of_another_vehicle_inside_a_record_are_ignored():
    batch = fleet_events.TelemetryBatchEvent.FromString(record("a", 1, 5))
    batch.frames.add().CopyFrom(fleet_pb2.Frame(frame_id="z:9", vehicle_id="z", sequence=9))
    w, stage = worker(), Stage()
    w.evaluate_poll([Msg(0, 0, batch.SerializeToString())], stage)
    assert all(c.vehicle_id == "a" for c in w.producer.candidates) and not stage.dead
