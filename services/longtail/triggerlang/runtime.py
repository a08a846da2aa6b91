"""The evaluator: per-car state, firing mode, minimum interval and capture window.

One engine for the car (edge), the fleet-side stream and backtests: `evaluate()` takes a
`longtail.fleet.v1.Frame` as it travels on the wire and uses `frame.captured_at` as its clock.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from longtail.triggerlang.catalogue import BUILTINS
from longtail.triggerlang.compiler import (
    UNSET,
    FirstSeenSlot,
    FlickerSlot,
    Program,
    RunSlot,
    TrackFlickerSlot,
    compile_program,
)

RISING_EDGE = "rising_edge"
EVERY_FRAME = "every_frame"
FIRING_MODES = (RISING_EDGE, EVERY_FRAME)
MAX_CAPTURE_FRAMES = 1000  # per side of a capture window


# ---------------------------------------------------------------------------------------------
# Options, fires, context
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FiringOptions:
    """When a true predicate becomes a fire; 1:1 with TriggerSpec.firing_mode, .min_interval
    and .capture_window (see `from_spec` / `apply_to_spec`)."""

    mode: str = RISING_EDGE  # "rising_edge" | "every_frame"
    min_interval_s: float = 0.0  # per car, measured on frame.captured_at
    frames_before: int = 0  # capture window: frames before the firing frame
    frames_after: int = 0  # ... and after it (an upload is a clip when either is > 0)

    def __post_init__(self) -> None:
        if self.mode not in FIRING_MODES:
            raise ValueError(f"firing mode must be one of {', '.join(FIRING_MODES)}, got {self.mode!r}")
        if isinstance(self.min_interval_s, bool) or not isinstance(self.min_interval_s, (int, float)):
            raise ValueError("min_interval_s must be a number of seconds")
        if not math.isfinite(self.min_interval_s) or self.min_interval_s < 0:
            raise ValueError(f"min_interval_s must be finite and >= 0, got {self.min_interval_s!r}")
        for name in ("frames_before", "frames_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CAPTURE_FRAMES:
                raise ValueError(f"{name} must be an integer in [0, {MAX_CAPTURE_FRAMES}], got {value!r}")

    @classmethod
    def from_spec(cls, spec: Any) -> FiringOptions:
        """From a longtail.triggers.v1.TriggerSpec (FIRING_MODE_UNSPECIFIED = rising edge)."""
        from longtail.triggers.v1 import triggers_pb2

        mode = EVERY_FRAME if spec.firing_mode == triggers_pb2.FIRING_MODE_EVERY_FRAME else RISING_EDGE
        interval = spec.min_interval.seconds + spec.min_interval.nanos / 1e9
        return cls(mode, float(interval), int(spec.capture_window.frames_before), int(spec.capture_window.frames_after))

    def apply_to_spec(self, spec: Any) -> None:
        """Write these options into a longtail.triggers.v1.TriggerSpec in place."""
        from longtail.triggers.v1 import triggers_pb2

        spec.firing_mode = triggers_pb2.FIRING_MODE_EVERY_FRAME if self.mode == EVERY_FRAME else triggers_pb2.FIRING_MODE_RISING_EDGE
        seconds = math.floor(self.min_interval_s)
        spec.min_interval.seconds = int(seconds)
        spec.min_interval.nanos = int(round((self.min_interval_s - seconds) * 1e9))
        spec.capture_window.frames_before = self.frames_before
        spec.capture_window.frames_after = self.frames_after

    def capture_window(self) -> Any:
        """As a longtail.triggers.v1.CaptureWindow (for RequestUpload)."""
        from longtail.triggers.v1 import triggers_pb2

        return triggers_pb2.CaptureWindow(frames_before=self.frames_before, frames_after=self.frames_after)


def fire_id(trigger_id: str, version: int, vehicle_id: str, frame_id: str) -> str:
    """Deterministic: lowercase hex sha256 of "<trigger_id>/<version>/<vehicle_id>/<frame_id>"."""
    return hashlib.sha256(f"{trigger_id}/{version}/{vehicle_id}/{frame_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Fire:
    trigger_id: str
    version: int
    frame_id: str
    vehicle_id: str
    sequence: int
    frames_before: int
    frames_after: int
    fire_id: str

    def to_edge_fire(self, score: float = 1.0) -> Any:
        """As a longtail.fleet.v1.EdgeFire for Frame.edge_fires."""
        from longtail.fleet.v1 import fleet_pb2

        return fleet_pb2.EdgeFire(trigger_id=self.trigger_id, trigger_version=self.version, fire_id=self.fire_id, score=score)


class MapExpectation(NamedTuple):
    """A map feature the map expects in the camera's view on this frame."""

    cls: str  # e.g. "stop_sign"
    range_m: float = math.nan  # meters from the camera; NaN = unknown (any range matches)
    bearing_rad: float = math.nan  # relative to ego heading, left positive; NaN = unknown


FEATURE_CLASSES = {1: "stop_sign", 2: "traffic_light"}  # mapvision.v1.FeatureKind -> class name


def _expectation(item: Any) -> MapExpectation:
    if isinstance(item, MapExpectation):
        return item
    if isinstance(item, dict):
        cls, rng, brg = item.get("cls"), item.get("range_m"), item.get("bearing_rad")
    elif isinstance(item, (tuple, list)):
        if not 1 <= len(item) <= 3:
            raise ValueError(f"a map feature is (cls, range_m, bearing_rad), got {item!r}")
        cls, rng, brg = (list(item) + [None, None])[:3]
    else:
        cls, rng, brg = item.cls, getattr(item, "range_m", None), getattr(item, "bearing_rad", None)
    if not isinstance(cls, str):
        raise ValueError(f"a map feature's cls must be a str, got {cls!r}")
    rng = math.nan if rng is None else float(rng)
    brg = math.nan if brg is None else float(brg)
    return MapExpectation(cls, rng, brg)


@dataclass(frozen=True)
class EvalContext:
    """What the frame alone does not say. `map_features`: the map features expected in view
    on this frame (items: MapExpectation, (cls, range_m, bearing_rad) tuples, dicts or objects
    with those attributes). None = no map knowledge: map_disagreement() is false."""

    map_features: tuple[MapExpectation, ...] | None = None

    def __post_init__(self) -> None:
        if self.map_features is not None:
            object.__setattr__(self, "map_features", tuple(_expectation(f) for f in self.map_features))


def map_expectations(features: Iterable[Any], ego: Any, max_range_m: float = 60.0, half_fov_rad: float = 0.6, facing_tol_rad: float = math.pi / 2) -> tuple[MapExpectation, ...]:
    """Which longtail.mapvision.v1.MapFeature the camera should see from pose `ego`:
    not removed, within max_range_m, within +-half_fov_rad of the heading, and facing the car
    (the feature's heading points back at the ego within facing_tol_rad)."""
    out = []
    for f in features:
        if getattr(f, "removed", False) or f.kind not in FEATURE_CLASSES:
            continue
        dx, dy = f.x - ego.x, f.y - ego.y
        rng = math.hypot(dx, dy)
        if rng > max_range_m:
            continue
        bearing = (math.atan2(dy, dx) - ego.heading + math.pi) % (2 * math.pi) - math.pi
        if abs(bearing) > half_fov_rad:
            continue
        towards_car = math.atan2(-dy, -dx)
        if abs((f.heading - towards_car + math.pi) % (2 * math.pi) - math.pi) > facing_tol_rad:
            continue
        out.append(MapExpectation(FEATURE_CLASSES[f.kind], rng, bearing))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Per-car state
# ---------------------------------------------------------------------------------------------


class TriggerState:
    """Per-car state of one compiled trigger. Not thread-safe: one car's frames in order.

    Bounded: a few scalars plus the slots of the temporal built-ins, at most
    CompiledTrigger.state_items values in total (<= MAX_STATE_ITEMS = 16384)."""

    __slots__ = ("fingerprint", "vehicle_id", "last_seq", "idx", "prev_value", "last_fire_t", "frames", "fires", "slots", "frame", "dets", "ctx", "memo")

    def __init__(self, fingerprint: str, slots: list) -> None:
        self.fingerprint = fingerprint
        self.vehicle_id: str | None = None
        self.last_seq = 0  # highest Frame.sequence evaluated (0 = none)
        self.idx = 0  # frame index used by windows: Frame.sequence, or a counter when sequence is 0
        self.prev_value = False  # predicate on the previous frame (rising edge)
        self.last_fire_t: float | None = None
        self.frames = 0  # frames evaluated
        self.fires = 0
        self.slots = slots
        # transient, only during evaluate()
        self.frame: Any = None
        self.dets: Any = None
        self.ctx: EvalContext | None = None
        self.memo: list[Any] | None = None

    def __repr__(self) -> str:
        return f"TriggerState(vehicle_id={self.vehicle_id!r}, frames={self.frames}, fires={self.fires}, last_seq={self.last_seq}, prev_value={self.prev_value})"


def _slot_to_json(slot: Any) -> dict:
    if isinstance(slot, FlickerSlot):
        return {"t": "flicker", "prev": slot.prev, "prev_idx": slot.prev_idx, "toggles": list(slot.toggles), "k": slot.toggles.maxlen}
    if isinstance(slot, TrackFlickerSlot):
        return {"t": "track_flicker", "hot_until": slot.hot_until, "tracks": [[tid, e[0], e[1], list(e[2]), e[2].maxlen] for tid, e in slot.tracks.items()]}
    if isinstance(slot, FirstSeenSlot):
        return {"t": "first_seen", "tracks": [[tid, last] for tid, last in slot.tracks.items()], "untracked_idx": slot.untracked_idx, "started": slot.started}
    if isinstance(slot, RunSlot):
        return {"t": "run", "start": slot.start, "last": slot.last}
    raise TypeError(f"unknown slot {type(slot).__name__}")  # pragma: no cover


def _slot_from_json(data: dict) -> Any:
    kind = data["t"]
    if kind == "flicker":
        flicker = FlickerSlot(int(data["k"]))
        flicker.prev, flicker.prev_idx = data["prev"], int(data["prev_idx"])
        flicker.toggles.extend(int(i) for i in data["toggles"])
        return flicker
    if kind == "track_flicker":
        track_flicker = TrackFlickerSlot()
        track_flicker.hot_until = int(data["hot_until"])
        for tid, cls, last, changes, k in data["tracks"]:
            track_flicker.tracks[int(tid)] = [str(cls), int(last), deque((int(i) for i in changes), maxlen=int(k))]
        return track_flicker
    if kind == "first_seen":
        first_seen = FirstSeenSlot()
        first_seen.tracks = {int(tid): int(last) for tid, last in data["tracks"]}
        first_seen.untracked_idx = data["untracked_idx"]
        first_seen.started = bool(data["started"])
        return first_seen
    if kind == "run":
        run = RunSlot()
        run.start, run.last = data["start"], data["last"]
        return run
    raise ValueError(f"unknown slot type {kind!r}")


# ---------------------------------------------------------------------------------------------
# Compiled trigger
# ---------------------------------------------------------------------------------------------


class CompiledTrigger:
    """A trigger compiled once; evaluate it per car with that car's `new_state()`."""

    def __init__(self, source: str, program: Program, options: FiringOptions, trigger_id: str, version: int) -> None:
        self.source = source
        self.options = options
        self.trigger_id = trigger_id
        self.version = int(version)
        self.required_detectors: frozenset[str] = program.required_detectors
        self.normalized: str = program.normalized
        self.calls: tuple[str, ...] = tuple(program.calls)
        self.state_items: int = program.state_items  # upper bound of values kept per car
        self.constant: bool | None = program.constant  # the predicate's value if it ignores the frame
        self.vec = program.vec  # the predicate as a tree for the column backend (vector.py); None: frame by frame only
        self.uses_map = any(BUILTINS[call.split("(", 1)[0]].needs_map for call in self.calls)  # needs EvalContext.map_features
        self._program = program
        self.fingerprint = hashlib.sha256(f"{program.normalized}\n{program.calls}".encode()).hexdigest()[:16]
        # Hot-path locals.
        self._predicate = program.predicate
        self._updaters = tuple(program.updaters)
        self._memo_size = program.memo_size
        self._every_frame = options.mode == EVERY_FRAME
        self._min_interval = float(options.min_interval_s)

    def __repr__(self) -> str:
        return f"CompiledTrigger({self.normalized!r}, options={self.options}, trigger_id={self.trigger_id!r}, version={self.version})"

    def new_state(self) -> TriggerState:
        return TriggerState(self.fingerprint, [factory() for factory in self._program.slot_factories])

    # -- evaluation ------------------------------------------------------------------------------

    def step(self, state: TriggerState, frame: Any, context: EvalContext | None = None) -> bool | None:
        """Advance the state by one frame and return the predicate's value (no firing logic).
        None when the frame is stale: its sequence is not above the last one evaluated
        (a re-sent duplicate); the state is then left untouched."""
        vehicle_id = frame.vehicle_id
        if state.vehicle_id != vehicle_id:
            if state.vehicle_id is None:
                state.vehicle_id = vehicle_id
            else:
                raise ValueError(f"this state belongs to vehicle {state.vehicle_id!r}, not {vehicle_id!r}")
        seq = frame.sequence
        # 0 means "not numbered" only until a numbered frame was seen: replayed after frames 1, 2, ...
        # a car's first frame (sequence 0) is stale too, or it would rewind the temporal state.
        if seq or state.last_seq:
            if seq <= state.last_seq:
                return None
            state.last_seq = seq
        state.idx = seq if seq > state.idx else state.idx + 1
        state.frame = frame
        state.dets = frame.detections
        state.ctx = context
        if self._memo_size:
            state.memo = [UNSET] * self._memo_size
        try:
            for update in self._updaters:
                update(state)
            value = bool(self._predicate(state))
        finally:
            state.frame = state.dets = state.ctx = state.memo = None
        state.frames += 1
        return value

    def evaluate(self, state: TriggerState, frame: Any, context: EvalContext | None = None) -> Fire | None:
        """Evaluate one frame of the car that owns `state`; a Fire when the trigger fires.

        rising_edge fires on a false -> true transition, every_frame on every true frame; either
        way not within options.min_interval_s (on frame.captured_at) of this car's last fire.
        An edge suppressed by the interval is not remembered. If the clock goes backwards the
        interval restarts from the new time."""
        value = self.step(state, frame, context)
        if value is None:
            return None
        previous = state.prev_value
        state.prev_value = value
        if not value or (previous and not self._every_frame):
            return None
        ts = frame.captured_at
        now = ts.seconds + ts.nanos * 1e-9
        last = state.last_fire_t
        if last is not None and self._min_interval > 0.0 and 0.0 <= now - last < self._min_interval:
            return None
        state.last_fire_t = now
        state.fires += 1
        options = self.options
        return Fire(
            trigger_id=self.trigger_id,
            version=self.version,
            frame_id=frame.frame_id,
            vehicle_id=frame.vehicle_id,
            sequence=frame.sequence,
            frames_before=options.frames_before,
            frames_after=options.frames_after,
            fire_id=fire_id(self.trigger_id, self.version, frame.vehicle_id, frame.frame_id),
        )

    # -- state persistence (fleet-side tables) ---------------------------------------------------

    def dump_state(self, state: TriggerState) -> dict:
        """A JSON-serializable snapshot of a per-car state (e.g. for a faust table)."""
        return {
            "fingerprint": state.fingerprint,
            "vehicle_id": state.vehicle_id,
            "last_seq": state.last_seq,
            "idx": state.idx,
            "prev_value": state.prev_value,
            "last_fire_t": state.last_fire_t,
            "frames": state.frames,
            "fires": state.fires,
            "slots": [_slot_to_json(s) for s in state.slots],
        }

    def load_state(self, data: dict | None) -> TriggerState:
        """Inverse of dump_state. A snapshot of another trigger (or version) gives a fresh state."""
        if not data or data.get("fingerprint") != self.fingerprint:
            return self.new_state()
        state = TriggerState(self.fingerprint, [_slot_from_json(s) for s in data["slots"]])
        state.vehicle_id = data["vehicle_id"]
        state.last_seq = int(data["last_seq"])
        state.idx = int(data["idx"])
        state.prev_value = bool(data["prev_value"])
        state.last_fire_t = None if data["last_fire_t"] is None else float(data["last_fire_t"])
        state.frames = int(data["frames"])
        state.fires = int(data["fires"])
        return state


def compile_trigger(source: str, options: FiringOptions = FiringOptions(), trigger_id: str = "", version: int = 0) -> CompiledTrigger:
    """Parse, type-check and compile. Raises TriggerSyntaxError with line/column on a bad expression."""
    if not isinstance(options, FiringOptions):
        raise TypeError(f"options must be FiringOptions, got {type(options).__name__}")
    return CompiledTrigger(source, compile_program(source), options, trigger_id, version)


def validate(source: str) -> None:
    """Raises TriggerSyntaxError if `source` is not a valid trigger expression."""
    compile_program(source)
