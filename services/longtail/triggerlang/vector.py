"""Many triggers over many cars' frames at once, column by column (numpy): the fleet-side path.

`BatchEvaluator(triggers).run(cars)` has exactly the effect of calling
`CompiledTrigger.evaluate(state, frame)` for every frame of every car and every trigger — the
same fires, the same states afterwards (tests compare both on random triggers and frames) — but
each subexpression is computed once per batch over arrays, and a subexpression several triggers
share (`d.cls == stop_sign`, `count(traffic_light)`, `ego.speed`) once for all of them.

How: the compiler describes every expression a second time as a hashable tree (`C.vec`). Here a
tree is evaluated over the batch's columns (one entry per frame, or per detection for `d.`
expressions), memoized by the tree itself, which is what shares work between triggers. The
temporal built-ins (`flicker`, `sustained`, `within`) become scans over each car's run of frames
that start from, and write back, the same per-car slots the frame-by-frame engine keeps; the
firing rules (rising edge, minimum interval) are applied the same way.

What runs frame by frame instead, with the same states: triggers whose tree is None
(`track_flicker`, `first_seen`, `map_disagreement`), and cars whose frames are not numbered
(`sequence` 0) or whose state counts frames itself.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from longtail.triggerlang.catalogue import REDUCED_FIELDS, VEC_TEMPORAL, truthy
from longtail.triggerlang.runtime import CompiledTrigger, EvalContext, Fire, TriggerState, fire_id

COLUMNS = frozenset({"const", "det", "attr", "attr_score", "class_score", "ego", "score", "has_score", "all_dets"})  # decoded input
NO_INDEX = -(2**62)  # "never" for frame indices (windows are at most 1000 frames)
MAX_SEQUENCE = 2**62  # above this a car's frames run frame by frame (int64 arithmetic)


@dataclass
class CarFrames:
    """One car's frames in arrival order and its state of every trigger (aligned with
    `BatchEvaluator.triggers`). `context(frame)` is called only for triggers that need map
    knowledge (map_disagreement)."""

    frames: Sequence[Any]
    states: list[TriggerState]
    context: Callable[[Any], EvalContext | None] | None = None


@dataclass(frozen=True)
class BatchFire:
    car: int  # index into the cars passed to run()
    frame: int  # index into that car's frames
    trigger: int  # index into BatchEvaluator.triggers
    fire: Fire


def _mark_temporal(tree: Any, t: int) -> Any:
    """Give each temporal node the trigger's number: its result depends on that trigger's states,
    so it must never be shared with another trigger's identical-looking node."""
    if not isinstance(tree, tuple) or not tree or not isinstance(tree[0], str) or tree[0] == "const":
        return tree
    children = tuple(_mark_temporal(c, t) for c in tree[1:])
    if tree[0] in VEC_TEMPORAL:
        return (tree[0], children[0], (t, tree[2]), *children[2:])
    return (tree[0], *children)


def last_true(flag: np.ndarray, seg_first: np.ndarray) -> np.ndarray:
    """Per position i: the last position j in [seg_first[i], i] where flag[j], else -1."""
    pos = np.where(flag, np.arange(len(flag)), -1)
    np.maximum.accumulate(pos, out=pos)
    pos[pos < seg_first] = -1
    return pos


class BatchEvaluator:
    """Compiled once per set of active triggers; `run()` once per batch of frames."""

    def __init__(self, triggers: Sequence[CompiledTrigger], share: bool = True) -> None:
        self.triggers = list(triggers)
        self.share = share  # False: each trigger computes its own subexpressions (for measuring what sharing buys)
        self.trees = [None if t.vec is None else _mark_temporal(t.vec, i) for i, t in enumerate(self.triggers)]
        self.columnar = [i for i, tree in enumerate(self.trees) if tree is not None]
        self.frame_by_frame = [i for i, tree in enumerate(self.trees) if tree is None]
        self.needs_context = [t.uses_map for t in self.triggers]
        # (frame, trigger) evaluations so far by path, for the worker's metrics.
        self.evaluations = {"columns": 0, "frame_by_frame": 0}

    def run(self, cars: Sequence[CarFrames], columns: bool = True) -> list[BatchFire]:
        """Evaluate every frame of every car with every trigger; the fires ordered by car, frame
        and trigger, as frame-by-frame evaluation would produce them. `columns=False` evaluates
        everything frame by frame (the reference, and the fallback)."""
        fires: list[BatchFire] = []
        batch = _Batch()
        for c, car in enumerate(cars):
            kept = self._numbered_frames(car) if self.columnar and columns else None
            if kept is None:
                self._frame_by_frame(c, car, range(len(self.triggers)), fires)
                continue
            batch.add_car(c, car, kept)
            if self.frame_by_frame:
                self._frame_by_frame(c, car, self.frame_by_frame, fires)
        if batch.cars:
            batch.finish()
            self.evaluations["columns"] += batch.n * len(self.columnar)
            for t in self.columnar:
                _TriggerRun(self, batch, t).run(fires)
        fires.sort(key=lambda f: (f.car, f.frame, f.trigger))
        return fires

    def _numbered_frames(self, car: CarFrames) -> list[int] | None:
        """Positions of the frames any trigger may evaluate (sequence above every earlier one),
        or None when this car must run frame by frame."""
        frames = car.frames
        if not frames:
            return []
        vehicle = frames[0].vehicle_id
        for t in self.columnar:
            state = car.states[t]
            if state.idx != state.last_seq or state.vehicle_id not in (None, vehicle):
                return None
        kept, top = [], 0
        for i, frame in enumerate(frames):
            seq = frame.sequence
            if seq == 0 or seq >= MAX_SEQUENCE or frame.vehicle_id != vehicle:
                return None
            if seq > top:
                kept.append(i)
                top = seq
        return kept

    def _frame_by_frame(self, c: int, car: CarFrames, triggers: Sequence[int], fires: list[BatchFire]) -> None:
        self.evaluations["frame_by_frame"] += len(car.frames) * len(triggers)
        context_of = car.context if any(self.needs_context[t] for t in triggers) else None
        for i, frame in enumerate(car.frames):
            context = context_of(frame) if context_of is not None else None
            for t in triggers:
                fire = self.triggers[t].evaluate(car.states[t], frame, context)
                if fire is not None:
                    fires.append(BatchFire(c, i, t, fire))


class _Batch:
    """The numbered frames of the batch's cars, concatenated, with columns built on demand and
    every evaluated tree memoized."""

    def __init__(self) -> None:
        self.cars: list[int] = []  # index into run()'s cars, per batch car
        self.car_frames: list[CarFrames] = []
        self.frames: list[Any] = []
        self.positions: list[int] = []  # index into the car's frames, per batch frame
        self.starts: list[int] = [0]  # first batch frame of each batch car (+ the end)
        self.seq_lists: list[list[int]] = []
        self.cache: dict[Any, Any] = {}
        self.vocab: dict[str, int] = {}

    def add_car(self, c: int, car: CarFrames, kept: list[int]) -> None:
        if not kept:
            return
        self.cars.append(c)
        self.car_frames.append(car)
        self.frames.extend(car.frames[i] for i in kept)
        self.positions.extend(kept)
        self.starts.append(len(self.frames))
        self.seq_lists.append([car.frames[i].sequence for i in kept])

    def finish(self) -> None:
        self.n = len(self.frames)
        self.seq = np.fromiter((s for seqs in self.seq_lists for s in seqs), np.int64, self.n)
        self._dets: list | None = None

    # -- columns -----------------------------------------------------------------------------

    def dets(self) -> list:
        if self._dets is None:
            dets, counts = [], []
            for frame in self.frames:
                ds = frame.detections
                counts.append(len(ds))
                dets.extend(ds)
            self._dets = dets
            self.det_frame = np.repeat(np.arange(self.n), counts)
        return self._dets

    def codes(self, strings: list[str]) -> np.ndarray:
        vocab = self.vocab
        for s in set(strings).difference(vocab):
            vocab[s] = len(vocab)
        return np.fromiter(map(vocab.__getitem__, strings), np.int64, len(strings))

    def code(self, s: str) -> int:
        return self.vocab.setdefault(s, len(self.vocab))

    def floats(self, values) -> np.ndarray:
        return np.fromiter(values, np.float64)

    def det_column(self, name: str) -> np.ndarray:
        key = ("det", name)
        column = self.cache.get(key)
        if column is not None:
            return column
        dets = self.dets()
        if name == "cls":
            column = self.codes([d.cls for d in dets])
        elif name == "conf":
            column = self.floats(d.confidence for d in dets)
        elif name == "track":
            column = self.floats(d.track_id for d in dets)
        elif name in ("has_range", "has_bearing"):
            proto_field = "range_m" if name == "has_range" else "bearing_rad"
            column = np.fromiter((d.HasField(proto_field) for d in dets), bool, len(dets))
        elif name == "range":
            column = np.where(self.det_column("has_range"), self.floats(d.range_m for d in dets), math.nan)
        elif name == "bearing":
            column = np.where(self.det_column("has_bearing"), self.floats(d.bearing_rad for d in dets), math.nan)
        elif name in ("x_min", "x_max", "y_min", "y_max"):
            column = self.floats(getattr(d.box, name) for d in dets)
        elif name == "width":
            column = self.det_column("x_max") - self.det_column("x_min")
        elif name == "height":
            column = self.det_column("y_max") - self.det_column("y_min")
        elif name == "area":
            column = self.det_column("width") * self.det_column("height")
        elif name == "cx":
            column = (self.det_column("x_min") + self.det_column("x_max")) * 0.5
        elif name == "cy":
            column = (self.det_column("y_min") + self.det_column("y_max")) * 0.5
        elif name in REDUCED_FIELDS:  # entropy, margin: computed per detection like the frame-by-frame engine
            value = REDUCED_FIELDS[name]
            column = self.floats(value(d) for d in dets)
        else:  # pragma: no cover - the compiler only emits the names above
            raise ValueError(f"unknown detection column {name!r}")
        self.cache[key] = column
        return column


class _TriggerRun:
    """One trigger over the batch: which frames it evaluates, its temporal scans and firing."""

    def __init__(self, evaluator: BatchEvaluator, batch: _Batch, t: int) -> None:
        self.evaluator, self.batch, self.t = evaluator, batch, t
        self.trigger = evaluator.triggers[t]
        # Each car's frames above this trigger's last sequence (a suffix of the numbered frames).
        pieces, cars, firsts, lasts = [], [], [], []
        total = 0
        all_frames = True
        for b, car in enumerate(batch.car_frames):
            state = car.states[t]
            start, end = batch.starts[b], batch.starts[b + 1]
            offset = bisect.bisect_right(batch.seq_lists[b], state.last_seq) if state.last_seq else 0
            if offset:
                all_frames = False
            if start + offset == end:
                continue
            pieces.append(np.arange(start + offset, end))
            cars.append(b)
            firsts.append(total)
            total += end - start - offset
            lasts.append(total - 1)
        self.valid = None if all_frames else (np.concatenate(pieces) if pieces else np.zeros(0, np.int64))
        self.n = total
        self.cars = cars  # batch cars with at least one frame to evaluate
        self.firsts = np.asarray(firsts, np.int64)
        self.lasts = np.asarray(lasts, np.int64)
        counts = np.diff(np.append(self.firsts, total)) if cars else np.zeros(0, np.int64)
        self.seg = np.repeat(np.arange(len(cars)), counts)  # per evaluated frame: its index in self.cars
        self.seg_first = self.firsts[self.seg] if cars else np.zeros(0, np.int64)
        self.idx = batch.seq if self.valid is None else batch.seq[self.valid]
        self.states: list[TriggerState] = [batch.car_frames[b].states[t] for b in cars]  # per evaluated car

    def here(self, values: Any, dtype=bool) -> np.ndarray:
        """A frame-level value restricted to the frames this trigger evaluates."""
        if np.ndim(values) == 0:
            return np.full(self.n, values, dtype)
        return values if self.valid is None else values[self.valid]

    def run(self, fires: list[BatchFire]) -> None:
        if not self.cars:
            return
        tree = self.evaluator.trees[self.t]
        assert tree is not None  # only columnar triggers are run here
        value = self.here(_Evaluator(self.batch, self).ev(tree))
        states = self.states
        # Rising edge: compare with the previous evaluated frame of the same car (the state's
        # value before the first).
        previous = np.empty(self.n, bool)
        previous[1:] = value[:-1]
        previous[self.firsts] = [s.prev_value for s in states]
        candidates = value if self.trigger._every_frame else value & ~previous
        trigger, batch = self.trigger, self.batch
        valid = self.valid
        for pos in np.flatnonzero(candidates).tolist():
            b = self.cars[self.seg[pos]]
            state = batch.car_frames[b].states[self.t]
            frame_pos = pos if valid is None else int(valid[pos])
            frame = batch.frames[frame_pos]
            ts = frame.captured_at
            now = ts.seconds + ts.nanos * 1e-9
            last = state.last_fire_t
            if last is not None and trigger._min_interval > 0.0 and 0.0 <= now - last < trigger._min_interval:
                continue
            state.last_fire_t = now
            state.fires += 1
            options = trigger.options
            fire = Fire(trigger.trigger_id, trigger.version, frame.frame_id, frame.vehicle_id, frame.sequence, options.frames_before, options.frames_after, fire_id(trigger.trigger_id, trigger.version, frame.vehicle_id, frame.frame_id))
            fires.append(BatchFire(batch.cars[b], batch.positions[frame_pos], self.t, fire))
        last_values = value[self.lasts].tolist()
        last_idx = self.idx[self.lasts].tolist()
        counts = (self.lasts - self.firsts + 1).tolist()
        for s, state in enumerate(states):
            if state.vehicle_id is None:
                state.vehicle_id = batch.frames[batch.starts[self.cars[s]]].vehicle_id
            state.prev_value = last_values[s]
            state.last_seq = state.idx = last_idx[s]
            state.frames += counts[s]


class _Evaluator:
    """Evaluates trees over a batch; stateless results are shared through the batch's cache."""

    def __init__(self, batch: _Batch, run: _TriggerRun) -> None:
        self.batch, self.run = batch, run
        self.own: dict = batch.cache if run.evaluator.share else {}

    def ev(self, tree: tuple) -> Any:
        cache = self.batch.cache if tree[0] in COLUMNS else self.own
        value = cache.get(tree)
        if value is None:
            value = getattr(self, "v_" + tree[0])(tree)
            cache[tree] = value
        return value

    def dets(self, values: Any, dtype=bool) -> np.ndarray:
        if np.ndim(values) == 0:
            return np.full(len(self.batch.dets()), values, dtype)
        return values

    def frames(self, values: Any, dtype=bool) -> np.ndarray:
        if np.ndim(values) == 0:
            return np.full(self.batch.n, values, dtype)
        return values

    # -- leaves -------------------------------------------------------------------------------

    def v_const(self, tree):
        value = tree[1]
        return self.batch.code(value) if isinstance(value, str) else value

    def v_det(self, tree):
        return self.batch.det_column(tree[1])

    def v_attr(self, tree):
        key = tree[1]
        return self.batch.codes([d.attributes.get(key, "") for d in self.batch.dets()])

    def v_attr_score(self, tree):
        key = tree[1]
        return self.batch.floats(d.attribute_scores.get(key, 0.0) for d in self.batch.dets())

    def v_class_score(self, tree):
        key = tree[1]
        return self.batch.floats(d.class_scores.get(key, 0.0) for d in self.batch.dets())

    def v_ego(self, tree):
        name = tree[1]
        return self.batch.floats(getattr(f.ego, name) for f in self.batch.frames)

    def v_score(self, tree):
        key = tree[1]
        return self.batch.floats(f.trigger_scores.get(key, 0.0) for f in self.batch.frames)

    def v_has_score(self, tree):
        key = tree[1]
        return np.fromiter((key in f.trigger_scores for f in self.batch.frames), bool, self.batch.n)

    def v_all_dets(self, tree):
        return np.ones(len(self.batch.dets()), bool)

    def v_bcast(self, tree):
        self.batch.dets()
        return self.ev(tree[1])[self.batch.det_frame]

    # -- operators (NaN = unknown: every comparison with it is false, including '!=') ----------

    def v_lt(self, tree):
        return np.less(self.ev(tree[1]), self.ev(tree[2]))

    def v_le(self, tree):
        return np.less_equal(self.ev(tree[1]), self.ev(tree[2]))

    def v_gt(self, tree):
        return np.greater(self.ev(tree[1]), self.ev(tree[2]))

    def v_ge(self, tree):
        return np.greater_equal(self.ev(tree[1]), self.ev(tree[2]))

    def v_eq(self, tree):
        return np.equal(self.ev(tree[1]), self.ev(tree[2]))

    def v_ne(self, tree):
        return np.not_equal(self.ev(tree[1]), self.ev(tree[2]))

    def v_ne_num(self, tree):
        a, b = self.ev(tree[1]), self.ev(tree[2])
        return np.not_equal(a, b) & np.equal(a, a) & np.equal(b, b)

    def v_add(self, tree):
        with np.errstate(all="ignore"):
            return np.add(self.ev(tree[1]), self.ev(tree[2]))

    def v_sub(self, tree):
        with np.errstate(all="ignore"):
            return np.subtract(self.ev(tree[1]), self.ev(tree[2]))

    def v_mul(self, tree):
        with np.errstate(all="ignore"):
            return np.multiply(self.ev(tree[1]), self.ev(tree[2]))

    def v_div(self, tree):
        a, b = self.ev(tree[1]), self.ev(tree[2])
        with np.errstate(all="ignore"):
            return np.where(np.not_equal(b, 0), np.divide(a, b), math.nan)

    def v_nan_min(self, tree):
        a, b = self.ev(tree[1]), self.ev(tree[2])
        return np.where(np.less_equal(a, b), a, np.where(np.less(b, a), b, math.nan))

    def v_nan_max(self, tree):
        a, b = self.ev(tree[1]), self.ev(tree[2])
        return np.where(np.greater_equal(a, b), a, np.where(np.greater(b, a), b, math.nan))

    def v_neg(self, tree):
        return np.negative(self.ev(tree[1]))

    def v_abs(self, tree):
        return np.abs(self.ev(tree[1]))

    def v_not(self, tree):
        return np.logical_not(self.ev(tree[1]))

    def v_and(self, tree):
        return np.logical_and.reduce([self.ev(child) for child in tree[1:]])

    def v_or(self, tree):
        return np.logical_or.reduce([self.ev(child) for child in tree[1:]])

    def v_truthy(self, tree):
        codes = self.ev(tree[1])
        names = [""] * len(self.batch.vocab)  # every entry is set below: codes are 0..n-1
        for name, code in self.batch.vocab.items():
            names[code] = name
        return np.fromiter((truthy(n) for n in names), bool, len(names))[codes] if len(names) else np.zeros(len(codes), bool)

    def v_in(self, tree):
        values = tree[2]
        column = self.ev(tree[1])
        if any(isinstance(v, str) for v in values):
            wanted = [self.batch.vocab[v] for v in values if v in self.batch.vocab]
        else:
            wanted = sorted(values)
        return np.isin(column, wanted)

    # -- per-frame reductions over the detections --------------------------------------------

    def _matching_frames(self, mask) -> np.ndarray:
        self.batch.dets()
        return self.batch.det_frame[self.dets(mask)]

    def v_any(self, tree):
        return np.bincount(self._matching_frames(self.ev(tree[1])), minlength=self.batch.n) > 0

    def v_all(self, tree):
        mask = self.dets(self.ev(tree[1]))
        self.batch.dets()
        return np.bincount(self.batch.det_frame[~mask], minlength=self.batch.n) == 0

    def v_count(self, tree):
        return np.bincount(self._matching_frames(self.ev(tree[1])), minlength=self.batch.n).astype(np.float64)

    def v_reduce(self, tree):
        mask = self.dets(self.ev(tree[1])).copy()
        values = self.dets(self.ev(tree[2]), np.float64)
        best, empty = tree[3], tree[4][1]
        mask &= ~np.isnan(values)  # unknown values are skipped
        frames = self.batch.det_frame[mask]
        out = np.full(self.batch.n, -math.inf if best == "max" else math.inf)
        (np.maximum if best == "max" else np.minimum).at(out, frames, values[mask])
        found = np.bincount(frames, minlength=self.batch.n) > 0
        return np.where(found, out, empty)

    # -- temporal scans over each car's frames, continuing from and writing back its slots -----

    def _slots(self, tree) -> list:
        _t, slot = tree[2]
        return [state.slots[slot] for state in self.run.states]

    def v_sustained(self, tree):
        run = self.run
        cond = run.here(self.frames(self.ev(tree[1])))
        frames = tree[3]
        slots = self._slots(tree)
        idx = run.idx
        last_false = last_true(~cond, run.seg_first)
        carried = np.asarray([NO_INDEX if s.start is None else s.start for s in slots], np.int64)[run.seg]
        carried = np.where(carried == NO_INDEX, idx[run.seg_first], carried)  # a run starting on the first frame
        start = np.where(last_false >= 0, idx[np.minimum(last_false + 1, run.n - 1)], carried)
        for slot, on, begin in zip(slots, cond[run.lasts].tolist(), start[run.lasts].tolist()):
            slot.start = begin if on else None
        return self._scatter(cond & (idx - start + 1 >= frames))

    def v_within(self, tree):
        run = self.run
        cond = run.here(self.frames(self.ev(tree[1])))
        frames = tree[3]
        slots = self._slots(tree)
        idx = run.idx
        seen = last_true(cond, run.seg_first)
        carried = np.asarray([NO_INDEX if s.last is None else s.last for s in slots], np.int64)[run.seg]
        last = np.where(seen >= 0, idx[np.maximum(seen, 0)], carried)
        for slot, value in zip(slots, last[run.lasts].tolist()):
            slot.last = None if value == NO_INDEX else value
        return self._scatter(last > idx - frames)

    def v_flicker(self, tree):
        run = self.run
        present = run.here(self.frames(self.ev(tree[1])))
        window, k = tree[3], tree[4]
        slots = self._slots(tree)
        idx, n, firsts = run.idx, run.n, run.firsts
        # The presence and index of the previous frame (the slot's for a car's first frame).
        previous = np.empty(n, bool)
        previous[1:] = present[:-1]
        previous_idx = np.empty(n, np.int64)
        previous_idx[1:] = idx[:-1]
        known = np.ones(n, bool)
        previous[firsts] = [bool(s.prev) for s in slots]
        previous_idx[firsts] = [s.prev_idx for s in slots]
        known[firsts] = [s.prev is not None for s in slots]
        toggled = known & (present != previous)
        toggles = previous_idx[toggled]  # every toggle of the batch, in order: index of its earlier frame
        total = np.cumsum(toggled)
        before = total[firsts] - toggled[firsts]  # toggles of earlier cars
        in_batch = total - before[run.seg]  # this car's toggles so far in the batch
        # The k-th most recent toggle comes from the batch, or from the slot's remembered ones.
        from_batch = in_batch >= k
        kth = np.full(n, NO_INDEX, np.int64)
        if len(toggles):
            kth[from_batch] = toggles[total[from_batch] - k]
        carried = np.full((len(slots), k), NO_INDEX, np.int64)
        held = np.zeros(len(slots), np.int64)
        for s, slot in enumerate(slots):
            q = list(slot.toggles)
            held[s] = len(q)
            carried[s, : len(q)] = q
        j = held[run.seg] - (k - in_batch)
        from_slot = ~from_batch & (j >= 0)
        kth[from_slot] = carried[run.seg[from_slot], j[from_slot]]
        for s, slot in enumerate(slots):
            last = int(run.lasts[s])
            slot.prev, slot.prev_idx = bool(present[last]), int(idx[last])
            own = toggles[before[s] : total[last]].tolist()
            if own:
                kept = (list(slot.toggles) + own)[-k:]
                slot.toggles.clear()
                slot.toggles.extend(kept)
        return self._scatter((kth != NO_INDEX) & (kth > idx - window))

    def _scatter(self, values: np.ndarray) -> np.ndarray:
        """Back to one entry per batch frame (False where this trigger does not evaluate)."""
        run = self.run
        if run.valid is None:
            return values
        out = np.zeros(self.batch.n, bool)
        out[run.valid] = values
        return out


__all__ = ["BatchEvaluator", "BatchFire", "CarFrames", "last_true"]
