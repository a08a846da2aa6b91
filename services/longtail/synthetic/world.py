"""A seeded procedural world for the fleet simulator.

A square grid of two-lane roads (right-hand traffic) over a few kilometres. Intersections are
stop-controlled (all-way or two-way), signalised, or uncontrolled; roadside slots between them
hold distractor signs (red round signs, yield/warning/info/street-name signs) and trees. Stop
signs carry the long-tail variants at the rates of `WorldConfig`: occluded by foliage, held by a
person (a crossing guard), on a gate (which applies only when closed), temporary (on a portable
stand) and with a modifier plate ("except right turn"). Parked vehicles (off unless
`vehicle_rate` > 0) stand at the kerb, some with their caution lights on (hazard or police); they
come from their own random stream, so turning them on leaves every other object where it was.

Everything is a pure function of (config, seed): two `World`s built with the same arguments hold
the same objects with the same ids, and a `Car` with the same seed drives the same route.

Coordinates: metres, x east, y north; headings in radians counter-clockwise from +x in (-pi, pi].
An object's `facing` is the heading its face points to (towards the traffic it addresses).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from longtail.common.v1 import common_pb2

STOP_SIGN = "stop_sign"
TRAFFIC_LIGHT = "traffic_light"
RED_ROUND_SIGN = "red_round_sign"
OTHER_SIGN = "other_sign"
TREE = "tree"
VEHICLE = "vehicle"
# Classes that appear in ground truth (trees are scenery only).
LABELLED_CLASSES = (STOP_SIGN, TRAFFIC_LIGHT, RED_ROUND_SIGN, OTHER_SIGN, VEHICLE)

# Stylised sizes (metres). Signs are drawn about twice their real size so that they stay
# legible on a 64x64 camera; ranges and boxes in ground truth are consistent with these.
STOP_SIGN_SIZE = 1.8
HANDHELD_SIGN_SIZE = 1.2
LIGHT_WIDTH, LIGHT_HEIGHT = 0.9, 2.2
ROUND_SIGN_SIZE = 1.6
OTHER_SIGN_SIZE = 1.6
VEHICLE_WIDTH, VEHICLE_HEIGHT = 2.4, 1.6  # the rear of a parked car, stylised like the signs

DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))  # E, N, W, S; index = "dir"
LIGHT_STATES = ("red", "yellow", "green")
OTHER_SIGN_KINDS = ("yield", "warning", "info", "street_name")
RED_ROUND_KINDS = ("no_entry", "speed_limit")
CAUTION_LIGHTS = ("off", "hazard", "police")  # a parked vehicle's `lights` attribute
VEHICLE_COLOURS = 3


def wrap_angle(a: float) -> float:
    """Wrap to (-pi, pi]."""
    a = math.fmod(a + math.pi, 2.0 * math.pi)
    if a <= 0.0:
        a += 2.0 * math.pi
    return a - math.pi


def dir_heading(d: int) -> float:
    return wrap_angle(d * math.pi / 2.0)


def _right(d: int) -> tuple[int, int]:
    dx, dy = DIRECTIONS[d]
    return dy, -dx


@dataclass(frozen=True)
class WorldConfig:
    """Layout and long-tail variant rates. Variant rates are per stop sign (each an independent
    draw, except `mount`: handheld, gate or pole are exclusive); `distractor_rate` and
    `other_sign_rate` are per roadside slot (one every `slot_spacing_m` per direction)."""

    blocks: int = 12  # blocks per side: (blocks+1)^2 intersections
    block_m: float = 200.0
    road_half_width_m: float = 3.5  # two lanes of 3.5 m
    stop_intersection_rate: float = 0.5
    all_way_stop_rate: float = 0.5  # of stop intersections; the rest are two-way
    light_intersection_rate: float = 0.25
    occluded_rate: float = 0.08
    occlusion_min: float = 0.35  # fraction of the sign face covered by foliage, drawn uniformly
    occlusion_max: float = 0.75
    handheld_rate: float = 0.03
    gate_rate: float = 0.03
    gate_closed_prob: float = 0.5
    temporary_rate: float = 0.03
    modifier_rate: float = 0.05
    distractor_rate: float = 0.25
    other_sign_rate: float = 0.25
    tree_rate: float = 0.5
    slot_spacing_m: float = 40.0
    light_state_probs: tuple[float, float, float] = (0.45, 0.1, 0.45)  # red, yellow, green
    vehicle_rate: float = 0.0  # parked vehicles per roadside slot (0: none, the worlds of before)
    hazard_rate: float = 0.15  # of parked vehicles: hazard lights on
    police_rate: float = 0.05  # of parked vehicles: a police car, its light bar on

    def common_only(self) -> WorldConfig:
        """Same world without long-tail stop-sign variants (what the bootstrap model sees)."""
        return replace(self, occluded_rate=0.0, handheld_rate=0.0, gate_rate=0.0, temporary_rate=0.0, modifier_rate=0.0)

    def only(self, **rates: float) -> WorldConfig:
        """Common world plus the given variant rates, e.g. `cfg.only(occluded_rate=1.0)`."""
        changes: dict[str, Any] = dict(rates)
        return replace(self.common_only(), **changes)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Foliage:
    """Leaf blobs in front of a sign face, in face-normalised coordinates (sign half-size = 1,
    x right, y up as seen from the front)."""

    blobs: list[tuple[float, float, float, int]]  # (cx, cy, radius, shade index)
    covered_fraction: float


@dataclass
class WorldObject:
    object_id: str
    cls: str
    x: float  # base position (metres)
    y: float
    z: float  # height of the face centre above the ground
    facing: float  # heading the face points to
    width: float  # face width (metres)
    height: float  # face height (metres)
    attributes: dict[str, str] = field(default_factory=dict)  # ground-truth attributes
    node: tuple[int, int] | None = None  # intersection it controls, if any
    # Where the addressed traffic drives: a lane point next to the object and its heading.
    anchor_x: float = 0.0
    anchor_y: float = 0.0
    approach_heading: float = 0.0
    kind: str = ""  # drawing sub-type (e.g. "no_entry", "yield")
    foliage: Foliage | None = None
    post_x: float = 0.0  # where the pole/person/stand stands (may differ from the face)
    post_y: float = 0.0

    @property
    def permanent(self) -> bool:
        """Would a map hold it? Handheld and temporary stop signs come and go."""
        if self.cls == TRAFFIC_LIGHT:
            return True
        if self.cls != STOP_SIGN:
            return False
        return self.attributes.get("mount") != "handheld" and self.attributes.get("temporary") != "true"


def _octagon_inside(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ax, ay = np.abs(x), np.abs(y)
    return np.maximum(np.maximum(ax, ay), (ax + ay) / math.sqrt(2.0)) <= 1.0


def make_foliage(rng: np.random.Generator, target: float) -> Foliage:
    """Grow leaf blobs from one side of the face until `target` of the octagon is covered."""
    g = (np.arange(24) + 0.5) / 12.0 - 1.0
    gx, gy = np.meshgrid(g, g)
    inside = _octagon_inside(gx, gy)
    covered = np.zeros_like(inside)
    total = inside.sum()
    theta = rng.uniform(-math.pi, math.pi)
    ux, uy = math.cos(theta), math.sin(theta)
    blobs: list[tuple[float, float, float, int]] = []
    # a few blobs outside the face: the bush/tree the leaves belong to
    for _ in range(3):
        rho = rng.uniform(1.2, 1.7)
        lat = rng.uniform(-1.0, 1.0)
        blobs.append((ux * rho - uy * lat, uy * rho + ux * lat, rng.uniform(0.45, 0.8), int(rng.integers(0, 3))))
    rho = 1.3
    frac = 0.0
    for _ in range(200):
        if frac >= target:
            break
        lat = rng.uniform(-1.1, 1.1)
        r = rng.uniform(0.3, 0.55)
        cx, cy = ux * rho - uy * lat, uy * rho + ux * lat
        add = (gx - cx) ** 2 + (gy - cy) ** 2 <= r * r
        new = covered | add
        new_frac = (new & inside).sum() / total
        if new_frac > target + 0.08 and frac > 0:  # would overshoot: try a smaller blob
            rho -= 0.02
            continue
        covered = new
        frac = new_frac
        blobs.append((cx, cy, r, int(rng.integers(0, 3))))
        rho -= 0.07
    return Foliage(blobs=blobs, covered_fraction=float(frac))


class World:
    """The procedural world. `objects` is in a deterministic order; `by_id` indexes it."""

    def __init__(self, config: WorldConfig | None = None, seed: int = 0) -> None:
        self.config = config or WorldConfig()
        self.seed = seed
        self.objects: list[WorldObject] = []
        # (i, j, dir) -> "stop" | "red" | "yellow" | "green": control met by traffic arriving at
        # intersection (i, j) travelling in `dir`. Missing = uncontrolled.
        self.approach_control: dict[tuple[int, int, int], str] = {}
        self._counters: Counter = Counter()
        self._generate(np.random.default_rng(np.random.SeedSequence([seed, 0x5EED])))
        self.by_id = {o.object_id: o for o in self.objects}
        self._arrays()

    # -- geometry helpers ------------------------------------------------------------------
    @property
    def size_m(self) -> float:
        return self.config.blocks * self.config.block_m

    def node_xy(self, i: int, j: int) -> tuple[float, float]:
        return i * self.config.block_m, j * self.config.block_m

    def valid_dirs(self, i: int, j: int) -> list[int]:
        n = self.config.blocks
        out = []
        for d, (dx, dy) in enumerate(DIRECTIONS):
            if 0 <= i + dx <= n and 0 <= j + dy <= n:
                out.append(d)
        return out

    def _new_id(self, cls: str) -> str:
        self._counters[cls] += 1
        return f"{cls}/{self._counters[cls]:05d}"

    # -- generation ------------------------------------------------------------------------
    def _generate(self, rng: np.random.Generator) -> None:
        cfg = self.config
        n = cfg.blocks
        for i in range(n + 1):
            for j in range(n + 1):
                u = rng.random()
                if u < cfg.stop_intersection_rate:
                    self._stop_intersection(rng, i, j)
                elif u < cfg.stop_intersection_rate + cfg.light_intersection_rate:
                    self._light_intersection(rng, i, j)
        for i in range(n + 1):
            for j in range(n + 1):
                for d in (0, 1):  # each segment once, both travel directions inside
                    dx, dy = DIRECTIONS[d]
                    if 0 <= i + dx <= n and 0 <= j + dy <= n:
                        self._segment(rng, i, j, d)
                        self._segment(rng, i + dx, j + dy, d + 2)
        if cfg.vehicle_rate > 0:
            vrng = np.random.default_rng(np.random.SeedSequence([self.seed, 0x7E41C1E]))
            for i in range(n + 1):
                for j in range(n + 1):
                    for d in range(4):
                        dx, dy = DIRECTIONS[d]
                        if 0 <= i + dx <= n and 0 <= j + dy <= n:
                            self._parked_vehicles(vrng, i, j, d)

    def _approach_points(self, i: int, j: int, d: int, back: float, right: float) -> tuple[float, float]:
        """Point `back` metres before intersection (i, j) along travel dir `d`, `right` metres to
        the right of the road centre line."""
        px, py = self.node_xy(i, j)
        dx, dy = DIRECTIONS[d]
        rx, ry = _right(d)
        return px - dx * back + rx * right, py - dy * back + ry * right

    def _stop_intersection(self, rng: np.random.Generator, i: int, j: int) -> None:
        cfg = self.config
        all_way = rng.random() < cfg.all_way_stop_rate
        axis = int(rng.integers(0, 2))
        # approaches arrive travelling in dir d from the neighbour at -d
        for d in range(4):
            dx, dy = DIRECTIONS[d]
            if not (0 <= i - dx <= cfg.blocks and 0 <= j - dy <= cfg.blocks):
                continue
            if not all_way and d % 2 != axis:
                continue
            self._stop_sign(rng, i, j, d)

    def _stop_sign(self, rng: np.random.Generator, i: int, j: int, d: int) -> None:
        cfg = self.config
        hw = cfg.road_half_width_m
        lane = hw / 2.0
        back = hw + 1.5
        occluded = rng.random() < cfg.occluded_rate
        u = rng.random()
        mount = "handheld" if u < cfg.handheld_rate else "gate" if u < cfg.handheld_rate + cfg.gate_rate else "pole"
        temporary = mount == "pole" and rng.random() < cfg.temporary_rate
        modifier = mount != "handheld" and rng.random() < cfg.modifier_rate
        gate_closed = rng.random() < cfg.gate_closed_prob
        target = rng.uniform(cfg.occlusion_min, cfg.occlusion_max)
        foliage_rng = np.random.default_rng(rng.integers(0, 2**63))
        attrs = {
            "occlusion": "foliage" if occluded else "none",
            "mount": mount,
            "modifier": "except_right_turn" if modifier else "none",
            "temporary": "true" if temporary else "false",
        }
        size, z, right = STOP_SIGN_SIZE, 2.4, hw + 0.8
        post_right = right
        if mount == "handheld":
            size, z, right, post_right = HANDHELD_SIGN_SIZE, 1.75, hw - 0.1, hw - 0.5
        elif mount == "gate":
            attrs["gate"] = "closed" if gate_closed else "open"
            if gate_closed:
                z, right = 1.6, lane + 0.4
            else:
                z = 2.2
            post_right = hw + 0.8
        elif temporary:
            z, right, post_right = 1.5, hw + 0.2, hw + 0.2
        x, y = self._approach_points(i, j, d, back, right)
        px, py = self._approach_points(i, j, d, back, post_right)
        ax, ay = self._approach_points(i, j, d, back, lane)
        obj = WorldObject(
            object_id=self._new_id(STOP_SIGN),
            cls=STOP_SIGN,
            x=x,
            y=y,
            z=z,
            facing=dir_heading(d + 2),
            width=size,
            height=size,
            attributes=attrs,
            node=(i, j),
            anchor_x=ax,
            anchor_y=ay,
            approach_heading=dir_heading(d),
            kind=mount,
            post_x=px,
            post_y=py,
        )
        if occluded:
            obj.foliage = make_foliage(foliage_rng, target)
        self.objects.append(obj)
        applies = not (mount == "gate" and not gate_closed)
        if applies:
            self.approach_control[(i, j, d)] = "stop"

    def _light_intersection(self, rng: np.random.Generator, i: int, j: int) -> None:
        cfg = self.config
        hw = cfg.road_half_width_m
        probs = np.asarray(cfg.light_state_probs, dtype=float)
        state0 = LIGHT_STATES[int(rng.choice(3, p=probs / probs.sum()))]
        state1 = "green" if state0 == "red" else "red"
        for d in range(4):
            dx, dy = DIRECTIONS[d]
            if not (0 <= i - dx <= cfg.blocks and 0 <= j - dy <= cfg.blocks):
                continue
            state = state0 if d % 2 == 0 else state1
            # mounted beyond the intersection, on the far right corner, facing the approach
            x, y = self._approach_points(i, j, d, -(hw + 1.0), hw + 0.8)
            ax, ay = self._approach_points(i, j, d, hw + 1.5, hw / 2.0)
            self.objects.append(
                WorldObject(
                    object_id=self._new_id(TRAFFIC_LIGHT),
                    cls=TRAFFIC_LIGHT,
                    x=x,
                    y=y,
                    z=4.6,
                    facing=dir_heading(d + 2),
                    width=LIGHT_WIDTH,
                    height=LIGHT_HEIGHT,
                    attributes={"light_state": state},
                    node=(i, j),
                    anchor_x=ax,
                    anchor_y=ay,
                    approach_heading=dir_heading(d),
                    kind=state,
                    post_x=x,
                    post_y=y,
                )
            )
            self.approach_control[(i, j, d)] = state

    def _segment(self, rng: np.random.Generator, i: int, j: int, d: int) -> None:
        """Roadside slots along the segment leaving (i, j) in dir d, on the right of travel."""
        cfg = self.config
        hw = cfg.road_half_width_m
        dx, dy = DIRECTIONS[d]
        rx, ry = _right(d)
        px, py = self.node_xy(i, j)
        s = hw + 25.0
        while s < cfg.block_m - hw - 25.0:
            u = rng.random()
            sx, sy = px + dx * s, py + dy * s
            ax, ay = sx + rx * hw / 2.0, sy + ry * hw / 2.0
            common: dict[str, Any] = dict(facing=dir_heading(d + 2), anchor_x=ax, anchor_y=ay, approach_heading=dir_heading(d))
            ox, oy = sx + rx * (hw + 0.8), sy + ry * (hw + 0.8)
            if u < cfg.distractor_rate:
                kind = RED_ROUND_KINDS[int(rng.integers(0, len(RED_ROUND_KINDS)))]
                self.objects.append(
                    WorldObject(
                        object_id=self._new_id(RED_ROUND_SIGN),
                        cls=RED_ROUND_SIGN,
                        x=ox,
                        y=oy,
                        z=2.4,
                        width=ROUND_SIGN_SIZE,
                        height=ROUND_SIGN_SIZE,
                        attributes={"kind": kind},
                        kind=kind,
                        post_x=ox,
                        post_y=oy,
                        **common,
                    )
                )
            elif u < cfg.distractor_rate + cfg.other_sign_rate:
                kind = OTHER_SIGN_KINDS[int(rng.integers(0, len(OTHER_SIGN_KINDS)))]
                w, h = (OTHER_SIGN_SIZE * 1.4, OTHER_SIGN_SIZE * 0.6) if kind == "street_name" else (OTHER_SIGN_SIZE, OTHER_SIGN_SIZE)
                self.objects.append(
                    WorldObject(
                        object_id=self._new_id(OTHER_SIGN),
                        cls=OTHER_SIGN,
                        x=ox,
                        y=oy,
                        z=2.4,
                        width=w,
                        height=h,
                        attributes={"kind": kind},
                        kind=kind,
                        post_x=ox,
                        post_y=oy,
                        **common,
                    )
                )
            if rng.random() < cfg.tree_rate:
                off = hw + rng.uniform(4.0, 9.0)
                ts = s + cfg.slot_spacing_m / 2.0 + rng.uniform(-8.0, 8.0)
                tx, ty = px + dx * ts + rx * off, py + dy * ts + ry * off
                r = rng.uniform(2.0, 3.5)
                self.objects.append(
                    WorldObject(
                        object_id=self._new_id(TREE),
                        cls=TREE,
                        x=tx,
                        y=ty,
                        z=r + rng.uniform(2.0, 3.5),
                        facing=0.0,
                        width=2 * r,
                        height=2 * r,
                        post_x=tx,
                        post_y=ty,
                        kind=str(int(rng.integers(0, 3))),
                    )
                )
            s += cfg.slot_spacing_m

    def _parked_vehicles(self, rng: np.random.Generator, i: int, j: int, d: int) -> None:
        """Vehicles parked at the kerb on the right of the segment leaving (i, j) in dir d, their
        rear towards the traffic behind them; between the roadside slots (signs stay visible)."""
        cfg = self.config
        hw = cfg.road_half_width_m
        dx, dy = DIRECTIONS[d]
        rx, ry = _right(d)
        px, py = self.node_xy(i, j)
        s = hw + 25.0 + cfg.slot_spacing_m / 2.0
        while s < cfg.block_m - hw - 25.0:
            if rng.random() < cfg.vehicle_rate:
                u = rng.random()
                lights = "police" if u < cfg.police_rate else "hazard" if u < cfg.police_rate + cfg.hazard_rate else "off"
                at = s + rng.uniform(-4.0, 4.0)
                x, y = px + dx * at + rx * (hw + 0.6), py + dy * at + ry * (hw + 0.6)
                ax, ay = px + dx * at + rx * hw / 2.0, py + dy * at + ry * hw / 2.0
                self.objects.append(
                    WorldObject(
                        object_id=self._new_id(VEHICLE),
                        cls=VEHICLE,
                        x=x,
                        y=y,
                        z=VEHICLE_HEIGHT / 2.0 + 0.25,
                        facing=dir_heading(d + 2),
                        width=VEHICLE_WIDTH,
                        height=VEHICLE_HEIGHT,
                        attributes={"lights": lights},
                        anchor_x=ax,
                        anchor_y=ay,
                        approach_heading=dir_heading(d),
                        kind=str(int(rng.integers(0, VEHICLE_COLOURS))),
                        post_x=x,
                        post_y=y,
                    )
                )
            s += cfg.slot_spacing_m

    def _arrays(self) -> None:
        self.xs = np.array([o.x for o in self.objects], dtype=np.float64)
        self.ys = np.array([o.y for o in self.objects], dtype=np.float64)
        self.is_tree = np.array([o.cls == TREE for o in self.objects], dtype=bool)

    # -- queries ---------------------------------------------------------------------------
    def objects_of(self, cls: str) -> list[WorldObject]:
        return [o for o in self.objects if o.cls == cls]

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts per class and per `attribute=value` (for checking variant rates)."""
        out: dict[str, Counter] = {}
        for o in self.objects:
            c = out.setdefault(o.cls, Counter())
            c["total"] += 1
            for k, v in o.attributes.items():
                c[f"{k}={v}"] += 1
        return {k: dict(v) for k, v in out.items()}

    def map_features(self, missing_rate: float = 0.1, stale_rate: float = 0.05, seed: int = 0) -> list:
        """A deliberately imperfect map export (`mapvision.v1.MapFeature`, source SEED) of the
        permanent stop signs and traffic lights: a `missing_rate` fraction is left out, and a
        `stale_rate` fraction is moved 8-25 m along its road (and a stale modifier dropped), as
        if the sign had been relocated since the survey. Handheld and temporary signs are never
        in the map. Feature ids are the world object ids; compare with `by_id` to see what is
        wrong."""
        from longtail.mapvision.v1 import map_pb2

        rng = np.random.default_rng(np.random.SeedSequence([self.seed, seed, 0x3AF]))
        kinds = {STOP_SIGN: map_pb2.FEATURE_KIND_STOP_SIGN, TRAFFIC_LIGHT: map_pb2.FEATURE_KIND_TRAFFIC_LIGHT}
        out = []
        for o in self.objects:
            if not o.permanent:
                continue
            u = rng.random()
            shift = rng.uniform(8.0, 25.0) * (1 if rng.random() < 0.5 else -1)
            if u < missing_rate:
                continue
            x, y = o.x, o.y
            attrs = {}
            if o.cls == STOP_SIGN:
                attrs = {"mount": o.attributes["mount"], "modifier": o.attributes["modifier"]}
            if u < missing_rate + stale_rate:
                x += math.cos(o.approach_heading) * shift
                y += math.sin(o.approach_heading) * shift
                if "modifier" in attrs:
                    attrs["modifier"] = "none"
            out.append(
                map_pb2.MapFeature(
                    feature_id=o.object_id,
                    kind=kinds[o.cls],
                    x=x,
                    y=y,
                    heading=o.facing,
                    attributes=attrs,
                    confidence=1.0,
                    source=map_pb2.FEATURE_SOURCE_SEED,
                )
            )
        return out


# ------------------------------------------------------------------------------------------
# Cars
# ------------------------------------------------------------------------------------------


@dataclass
class _Piece:
    points: np.ndarray  # [K, 2] polyline
    cum: np.ndarray  # [K] cumulative length
    stop: str | None = None  # control at the end of the piece ("stop", "red", ...)
    done_stop: bool = False

    @property
    def length(self) -> float:
        return float(self.cum[-1])

    def at(self, s: float) -> tuple[float, float, float]:
        k = int(np.searchsorted(self.cum, s, side="right")) - 1
        k = min(max(k, 0), len(self.points) - 2)
        seg = self.cum[k + 1] - self.cum[k]
        t = 0.0 if seg <= 0 else (s - self.cum[k]) / seg
        p0, p1 = self.points[k], self.points[k + 1]
        x, y = p0 + (p1 - p0) * min(max(t, 0.0), 1.0)
        return float(x), float(y), math.atan2(p1[1] - p0[1], p1[0] - p0[0])


def _polyline(points: np.ndarray, stop: str | None = None) -> _Piece:
    seg = np.hypot(*np.diff(points, axis=0).T)
    return _Piece(points=points, cum=np.concatenate([[0.0], np.cumsum(seg)]), stop=stop)


class Car:
    """A car following the road grid on the right-hand lane: picks a random turn at every
    intersection (never a U-turn unless it must), slows down and waits at stop signs and red
    lights, and accelerates back to its cruise speed. Deterministic in its seed."""

    STOP_DWELL_S = 1.0
    RED_DWELL_S = 4.0
    ACCEL = 2.5  # m/s^2
    DECEL = 3.0

    def __init__(self, world: World, seed: int = 0, vehicle_id: str = "", cruise_speed: float | None = None) -> None:
        self.world = world
        self.vehicle_id = vehicle_id
        self.rng = np.random.default_rng(np.random.SeedSequence([world.seed, seed, 0xCA2]))
        n = world.config.blocks
        self.node = (int(self.rng.integers(0, n + 1)), int(self.rng.integers(0, n + 1)))
        dirs = world.valid_dirs(*self.node)
        self.dir = dirs[int(self.rng.integers(0, len(dirs)))]
        self.cruise = float(cruise_speed if cruise_speed is not None else self.rng.uniform(9.0, 14.0))
        self.speed = 0.0
        self.t = 0.0
        self.odometer = 0.0
        self.dwell = 0.0
        self.pieces: deque[_Piece] = deque()
        self.s = float(self.rng.uniform(0.0, world.config.block_m * 0.8))  # start mid-segment
        self._next_dir = self._choose(self._target(), self.dir)
        self._extend()
        # start somewhere along the first straight, already moving
        self.speed = self.cruise * 0.8
        self.s = min(self.s, self.pieces[0].length * 0.9)
        self._x, self._y, self._h = self.pieces[0].at(self.s)

    def _target(self) -> tuple[int, int]:
        dx, dy = DIRECTIONS[self.dir]
        return self.node[0] + dx, self.node[1] + dy

    def _choose(self, node: tuple[int, int], arriving_dir: int) -> int:
        dirs = self.world.valid_dirs(*node)
        options = [d for d in dirs if d != (arriving_dir + 2) % 4] or dirs
        return options[int(self.rng.integers(0, len(options)))]

    def _extend(self) -> None:
        """Append the straight along the current segment and the turn through its end node."""
        w = self.world
        hw = w.config.road_half_width_m
        lane = hw / 2.0
        radius = hw + 1.5
        (i, j), d = self.node, self.dir
        ti, tj = self._target()
        dx, dy = DIRECTIONS[d]
        rx, ry = _right(d)
        ax, ay = w.node_xy(i, j)
        bx, by = w.node_xy(ti, tj)
        start = np.array([ax + dx * radius + rx * lane, ay + dy * radius + ry * lane])
        end = np.array([bx - dx * radius + rx * lane, by - dy * radius + ry * lane])
        self.pieces.append(_polyline(np.stack([start, end]), stop=w.approach_control.get((ti, tj, d))))
        d2 = self._next_dir
        ex, ey = DIRECTIONS[d2]
        sx, sy = _right(d2)
        p2 = np.array([bx + ex * radius + sx * lane, by + ey * radius + sy * lane])
        if d2 == d:
            ctrl = (end + p2) / 2.0
        elif d2 == (d + 2) % 4:  # forced U-turn at a dead end: swing around the node
            ctrl = np.array([bx + dx * radius, by + dy * radius])
        else:
            ctrl = np.array([bx + rx * lane + sx * lane, by + ry * lane + sy * lane])
        t = np.linspace(0.0, 1.0, 9)[:, None]
        curve = (1 - t) ** 2 * end + 2 * (1 - t) * t * ctrl + t**2 * p2
        self.pieces.append(_polyline(curve))
        # advance the logical state to the next segment
        self.node, self.dir = (ti, tj), d2
        self._next_dir = self._choose(self._target(), d2)

    @property
    def pose(self) -> common_pb2.Pose:
        return common_pb2.Pose(x=self._x, y=self._y, heading=wrap_angle(self._h), speed=self.speed)

    def step(self, dt: float) -> common_pb2.Pose:
        """Advance the simulated clock by `dt` seconds; returns the new pose."""
        self.t += dt
        if self.dwell > 0.0:
            self.dwell -= dt
            self.speed = 0.0
            return self.pose
        piece = self.pieces[0]
        remaining = piece.length - self.s
        cap = self.cruise
        must_stop = piece.stop in ("stop", "red") and not piece.done_stop
        if must_stop:
            cap = min(cap, max(1.0, math.sqrt(2.0 * self.DECEL * max(remaining, 0.0))))
        if self.speed < cap:
            self.speed = min(cap, self.speed + self.ACCEL * dt)
        else:
            self.speed = cap
        ds = self.speed * dt
        if must_stop and ds >= remaining - 0.3:
            ds = max(remaining, 0.0)
            piece.done_stop = True
            self.dwell = self.STOP_DWELL_S if piece.stop == "stop" else self.RED_DWELL_S
            self.speed = 0.0
        self.s += ds
        self.odometer += ds
        while self.s >= self.pieces[0].length:
            self.s -= self.pieces[0].length
            self.pieces.popleft()
            if len(self.pieces) < 2:
                self._extend()
        self._x, self._y, self._h = self.pieces[0].at(self.s)
        return self.pose
