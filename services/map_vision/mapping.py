"""The low-definition map and the map-vision comparison: pure logic, no I/O (docs/map-vision.md).

- **Projection**: a detection (range_m, bearing_rad left-positive) seen from an ego pose lands at
  `ego + range * (cos(heading + bearing), sin(heading + bearing))` in the world frame.
- **Association** (greedy, one-to-one, per class): a detection *matches* a feature when, seen from
  the ego, they agree laterally within `assoc_radius_m` and along the ray within `assoc_radius_m +
  assoc_range_frac * range`, and the car is not behind the feature's face. A *confirmed* match also
  agrees along the ray within `assoc_radius_m` and is within `map_range_m`: only confirmed matches
  move a feature, vote on its attributes and count as seeing it on a pass, so a sign moved by more
  than the radius is never confirmed at its old place.
- **Refresh**: confirmed detections update their feature by weighted exponential smoothing
  (weight = confidence / (1 + (range / ref_range_m)^2); accumulated weight capped at
  `smoothing_cap`). Detections that match nothing seed *candidates* (same association); a candidate
  becomes a FLEET feature after `promote_min_observations` observations in `promote_min_passes`
  passes of at least `pass_min_frames` frames, once seen from within `promote_within_m`, unless most
  observations say it is transient (handheld, temporary). Fleet headings are the mean direction the
  feature was confirmed from; the 30-degree sectors it was confirmed from are its visibility model.
- **Staleness**: a car's run of frames with a feature in its trusted view is a *pass*; it is
  conclusive with `pass_min_frames` frames within `map_range_m`. A conclusive pass with a confirmed
  detection is a hit (confidence += (1 - confidence) * hit_gain), one without a miss (confidence *=
  1 - miss_decay); `stale_passes` misses in a row remove the feature.
- **Disagreements** per frame, in the trusted view (`min_range_m`..`compare_range_m`, within
  `compare_half_fov_rad`; a seeded face pointing at the car within `facing_tol_rad`, a fleet feature
  confirmed from that direction before): MAP_WITHOUT_VISION for a feature no detection matches;
  VISION_WITHOUT_MAP for a confident located detection that matches no feature; ATTRIBUTE_MISMATCH
  for a confirmed match whose confident attributes differ from the map's.

Not thread-safe: the caller serialises access (map_vision.worker holds one lock).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, field_validator, model_validator
from pydantic_settings import NoDecode

from longtail.mapvision.v1 import events_pb2, map_pb2

TWO_PI = 2.0 * math.pi
CLASS_KIND: dict[str, map_pb2.FeatureKind] = {"stop_sign": map_pb2.FEATURE_KIND_STOP_SIGN, "traffic_light": map_pb2.FEATURE_KIND_TRAFFIC_LIGHT}
KIND_CLASS: dict[int, str] = {v: k for k, v in CLASS_KIND.items()}
MISSING = events_pb2.DISAGREEMENT_KIND_MAP_WITHOUT_VISION
EXTRA = events_pb2.DISAGREEMENT_KIND_VISION_WITHOUT_MAP
MISMATCH = events_pb2.DISAGREEMENT_KIND_ATTRIBUTE_MISMATCH
CREATED, UPDATED, REMOVED = events_pb2.FEATURE_CHANGE_CREATED, events_pb2.FEATURE_CHANGE_UPDATED, events_pb2.FEATURE_CHANGE_REMOVED
SEED, FLEET = map_pb2.FEATURE_SOURCE_SEED, map_pb2.FEATURE_SOURCE_FLEET
MAX_COORD = 1e8  # metres; anything larger is a corrupt pose, not a place
SECTORS = 12  # 30-degree sectors of the directions a feature was seen from
SWEEP_EVERY_S = 10.0  # stream time between sweeps of idle cars and old candidates


class InvalidFrame(ValueError):
    """A telemetry frame that cannot be compared (the consumer dead-letters its record)."""


class InvalidFeature(ValueError):
    """A map feature (seed file, SeedMap) that cannot be placed on the map."""


# ---------------------------------------------------------------------------------------------
# Tunables
# ---------------------------------------------------------------------------------------------


class Tunables(BaseModel):
    """Every knob of the map. The service reads each from MAP_VISION_<NAME> (map_vision.settings)."""

    model_config = ConfigDict(frozen=True)

    view_range_m: float = 60.0  # camera range (fleet_sim Camera.max_range_m): features beyond are never matched
    half_fov_rad: float = 0.5236  # camera half field of view (60 deg horizontal)
    compare_range_m: float = 35.0  # trusted range of the comparison: disagreements and passes only within it
    map_range_m: float = 20.0  # detections move, confirm and discover features only within it (range error grows ~r^2)
    compare_half_fov_rad: float = 0.45  # trusted half FOV for MAP_WITHOUT_VISION (margin from the image edge)
    min_range_m: float = 6.0  # closer features leave the image (top/side): not expected
    facing_tol_rad: float = 1.05  # expected in view only when its face points at the car within this (60 deg)
    match_facing_tol_rad: float = 1.5  # a detection can be a feature seen from up to this angle off its face (86 deg)
    fleet_heading_slack_rad: float = 0.35  # extra tolerance for fleet features (heading estimated from observers)
    seen_from_min: int = 3  # a fleet feature is expected only from a 30-degree sector it was confirmed from this often
    assoc_radius_m: float = 4.0  # lateral gate, and the along-ray gate of a confirmed match
    assoc_range_frac: float = 0.15  # along-ray gate of a (loose) match: radius + frac * range
    ref_range_m: float = 10.0  # observation weight = conf / (1 + (range / ref_range_m)^2)
    smoothing_cap: float = 20.0  # cap on accumulated weight: exponential smoothing once reached
    seed_weight: float = 5.0  # a seeded (surveyed) position counts as this much observation weight
    min_detection_conf: float = 0.5  # weaker detections are ignored
    vision_only_conf: float = 0.6  # a VISION_WITHOUT_MAP needs at least this confidence
    min_feature_conf: float = 0.2  # weaker features do not raise MAP_WITHOUT_VISION
    attr_min_conf: float = 0.7  # attribute score needed to vote / to raise ATTRIBUTE_MISMATCH
    attr_switch_votes: float = 5.0  # votes a new attribute value needs over the current one
    map_attributes: Annotated[tuple[str, ...], NoDecode] = ("mount", "modifier")  # NoDecode: MAP_VISION_MAP_ATTRIBUTES is "a,b", not JSON  # static attributes the map keeps
    promote_min_observations: int = 5
    promote_within_m: float = 12.0  # a candidate becomes a feature only once seen from this close (accurate range)
    promote_min_passes: int = 2
    pass_min_frames: int = 3
    pass_gap_s: float = 2.0  # frames further apart than this start a new pass
    stale_passes: int = 5  # consecutive miss passes that remove a feature
    hit_gain: float = 0.3
    miss_decay: float = 0.3
    candidate_ttl_s: float = 3600.0
    max_candidates: int = 100_000
    vehicle_ttl_s: float = 600.0  # per-car state of a silent car is dropped after this
    grid_cell_m: float = 64.0

    @field_validator("map_attributes", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return tuple(p.strip() for p in value.split(",") if p.strip()) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> Tunables:
        for name in type(self).model_fields:
            v = getattr(self, name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and (not math.isfinite(v) or v < 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        for name in ("hit_gain", "miss_decay", "min_detection_conf", "vision_only_conf", "min_feature_conf", "attr_min_conf"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("assoc_radius_m", "grid_cell_m", "ref_range_m", "smoothing_cap", "view_range_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if not self.map_range_m <= self.compare_range_m <= self.view_range_m:
            raise ValueError("need map_range_m <= compare_range_m <= view_range_m")
        if self.stale_passes < 1 or self.promote_min_observations < 1 or self.promote_min_passes < 1 or self.pass_min_frames < 1:
            raise ValueError("stale_passes, promote_min_observations, promote_min_passes and pass_min_frames must be >= 1")
        return self


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def wrap(a: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (a + math.pi) % TWO_PI - math.pi


def project(ex: float, ey: float, heading: float, range_m: float, bearing_rad: float) -> tuple[float, float]:
    """World position of a detection at (range, bearing left-positive) from the ego pose."""
    a = heading + bearing_rad
    return ex + range_m * math.cos(a), ey + range_m * math.sin(a)


def observe(ex: float, ey: float, heading: float, x: float, y: float) -> tuple[float, float]:
    """Inverse of `project`: (range, bearing) of world point (x, y) from the ego pose."""
    dx, dy = x - ex, y - ey
    return math.hypot(dx, dy), wrap(math.atan2(dy, dx) - heading)


def faces(ex: float, ey: float, x: float, y: float, feature_heading: float, tol_rad: float) -> bool:
    """Does a face at (x, y) pointing to `feature_heading` point at the ego within tol_rad?"""
    return abs(wrap(feature_heading - math.atan2(ey - y, ex - x))) <= tol_rad


def in_view(ex: float, ey: float, heading: float, x: float, y: float, feature_heading: float | None, max_range: float, half_fov: float, facing_tol: float, min_range: float = 0.0) -> bool:
    """Field-of-view and range test: within [min_range, max_range], within +-half_fov of the
    heading and (if `feature_heading` is given) its face pointing at the car."""
    r, b = observe(ex, ey, heading, x, y)
    if not (min_range <= r <= max_range) or abs(b) > half_fov:
        return False
    return feature_heading is None or faces(ex, ey, x, y, feature_heading, facing_tol)


def disagreement_id(vehicle_id: str, frame_id: str, kind: int, subject: str) -> str:
    """sha256 of "<vehicle_id>/<frame_id>/<kind enum name>/<subject>" (see events.proto)."""
    name = events_pb2.DisagreementKind.Name(kind)
    return hashlib.sha256(f"{vehicle_id}/{frame_id}/{name}/{subject}".encode()).hexdigest()


def fleet_feature_id(cls: str, x: float, y: float, cell_m: float) -> str:
    """Deterministic id of a fleet-discovered feature: "<class>/<ix>_<iy>" with the position
    quantized to the association radius (map.proto)."""
    return f"{cls}/{math.floor(x / cell_m)}_{math.floor(y / cell_m)}"


def sector(ux: float, uy: float) -> int:
    return int((math.atan2(uy, ux) + math.pi) / TWO_PI * SECTORS) % SECTORS


def _ts(t: float | None, out) -> None:
    if t is not None:
        out.FromNanoseconds(int(round(t * 1e9)))


def _seconds(ts) -> float:
    return ts.seconds + ts.nanos * 1e-9


# ---------------------------------------------------------------------------------------------
# Features and the spatial index
# ---------------------------------------------------------------------------------------------


class Feature:
    """A map feature (or a candidate, `candidate=True`) with its estimation state."""

    __slots__ = (
        "feature_id",
        "cls",
        "x",
        "y",
        "heading",
        "sectors",
        "dir_x",
        "dir_y",
        "attributes",
        "confidence",
        "observation_count",
        "miss_count",
        "first_seen",
        "last_seen",
        "source",
        "removed",
        "weight",
        "votes",
        "miss_passes",
        "passes",
        "pass_vehicles",
        "transient",
        "permanent",
        "closest",
        "candidate",
        "cell",
        "change",
        "published",
        "updated_at",
        "last_published",
    )

    def __init__(
        self, feature_id: str, cls: str, x: float, y: float, heading: float, *, source: map_pb2.FeatureSource = FLEET, confidence: float = 1.0, attributes: Mapping[str, str] | None = None, weight: float = 1.0, candidate: bool = False
    ) -> None:
        self.feature_id = feature_id
        self.cls = cls
        self.x, self.y = float(x), float(y)
        self.heading = float(heading)
        self.sectors = [0] * SECTORS
        self.dir_x = self.dir_y = 0.0
        self.attributes: dict[str, str] = dict(attributes or {})
        self.confidence = float(confidence)
        self.observation_count = 0
        self.miss_count = 0
        self.first_seen: float | None = None
        self.last_seen: float | None = None
        self.source = source
        self.removed = False
        self.weight = weight
        self.votes: dict[str, dict[str, float]] = {k: {v: 1.0} for k, v in self.attributes.items()}
        self.miss_passes = 0
        self.passes = 0  # candidates: distinct passes observed
        self.pass_vehicles: dict[str, tuple[float, int]] = {}  # candidates: vehicle -> (last time, frames in pass)
        self.transient = 0
        self.permanent = 0
        self.closest = math.inf  # candidates: smallest range it was seen from
        self.candidate = candidate
        self.cell: tuple[int, int] | None = None
        self.change = events_pb2.FEATURE_CHANGE_UNSPECIFIED  # pending FeatureChange (0 = nothing structural pending)
        self.published = False
        self.updated_at: float | None = None
        self.last_published = -math.inf

    @property
    def kind(self) -> map_pb2.FeatureKind:
        return CLASS_KIND[self.cls]

    def to_proto(self) -> map_pb2.MapFeature:
        f = map_pb2.MapFeature(
            feature_id=self.feature_id,
            kind=self.kind,
            x=self.x,
            y=self.y,
            heading=self.heading,
            attributes=self.attributes,
            confidence=self.confidence,
            observation_count=self.observation_count,
            miss_count=self.miss_count,
            source=self.source,
            removed=self.removed,
        )
        _ts(self.first_seen, f.first_seen)
        _ts(self.last_seen, f.last_seen)
        return f

    @classmethod
    def from_proto(cls, p: map_pb2.MapFeature, tun: Tunables) -> Feature:
        """A feature restored from mapvision.features.v1 (smoothing weight from its count)."""
        f = cls(p.feature_id, KIND_CLASS[p.kind], p.x, p.y, p.heading, source=p.source or FLEET, confidence=p.confidence, attributes=dict(p.attributes), weight=min(tun.smoothing_cap, tun.seed_weight + 0.1 * p.observation_count))
        f.observation_count, f.miss_count, f.removed = p.observation_count, p.miss_count, p.removed
        f.first_seen = _seconds(p.first_seen) if p.HasField("first_seen") else None
        f.last_seen = _seconds(p.last_seen) if p.HasField("last_seen") else None
        f.votes = {k: {v: tun.attr_switch_votes} for k, v in f.attributes.items()}
        if f.source == FLEET:
            f.assume_seen_around_heading(tun.seen_from_min)
        f.published = True
        return f

    def observe_position(self, ox: float, oy: float, w: float, cap: float) -> None:
        """Weighted exponential smoothing of the position (the accumulated weight is capped)."""
        a = w / (self.weight + w)
        self.x += a * (ox - self.x)
        self.y += a * (oy - self.y)
        self.weight = min(cap, self.weight + w)

    def observe_from(self, ux: float, uy: float, w: float, estimate_heading: bool) -> None:
        """Record the direction (unit vector feature -> camera) it was confirmed from: the sectors
        it has been seen from are its visibility model, and (fleet features) the weighted mean
        direction is its heading estimate."""
        k = sector(ux, uy)
        self.sectors[k] += 1
        self.dir_x += w * ux
        self.dir_y += w * uy
        if self.sectors[k] > 1000:  # keep following the world: old views fade
            self.sectors = [n // 2 for n in self.sectors]
            self.dir_x *= 0.5
            self.dir_y *= 0.5
        if estimate_heading and (self.dir_x or self.dir_y):
            self.heading = math.atan2(self.dir_y, self.dir_x)

    def seen_from(self, ux: float, uy: float, min_count: int) -> bool:
        return self.sectors[sector(ux, uy)] >= min_count

    def assume_seen_around_heading(self, count: int) -> None:
        """Visibility model of a fleet feature restored without its history: +-1 sector of its heading."""
        k = sector(math.cos(self.heading), math.sin(self.heading))
        for i in (k - 1, k, k + 1):
            self.sectors[i % SECTORS] = max(self.sectors[i % SECTORS], count)

    def vote(self, key: str, value: str, w: float, switch_votes: float) -> bool:
        """Count an attribute observation; True when the map's value changed."""
        votes = self.votes.setdefault(key, {})
        votes[value] = votes.get(value, 0.0) + w
        total = sum(votes.values())
        if total > 50.0:  # keep following the world: old votes fade
            for k in votes:
                votes[k] *= 0.5
        current = self.attributes.get(key)
        if value != current and votes[value] >= (votes.get(current, 0.0) if current is not None else 0.0) + switch_votes:
            self.attributes[key] = value
            return True
        return False


class Grid:
    """Uniform grid of features: cell -> {feature_id: Feature}; `near` looks at the cells a disc touches."""

    def __init__(self, cell_m: float) -> None:
        self.cell_m = cell_m
        self.cells: dict[tuple[int, int], dict[str, Feature]] = {}

    def _key(self, x: float, y: float) -> tuple[int, int]:
        return math.floor(x / self.cell_m), math.floor(y / self.cell_m)

    def add(self, f: Feature) -> None:
        f.cell = self._key(f.x, f.y)
        self.cells.setdefault(f.cell, {})[f.feature_id] = f

    def remove(self, f: Feature) -> None:
        if f.cell is not None:
            bucket = self.cells.get(f.cell)
            if bucket is not None:
                bucket.pop(f.feature_id, None)
                if not bucket:
                    del self.cells[f.cell]
            f.cell = None

    def moved(self, f: Feature) -> None:
        if f.cell != self._key(f.x, f.y):
            self.remove(f)
            self.add(f)

    def near(self, x: float, y: float, radius: float) -> list[Feature]:
        c = self.cell_m
        i0, i1 = math.floor((x - radius) / c), math.floor((x + radius) / c)
        j0, j1 = math.floor((y - radius) / c), math.floor((y + radius) / c)
        out: list[Feature] = []
        cells = self.cells
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                bucket = cells.get((i, j))
                if bucket:
                    out.extend(bucket.values())
        return out

    def in_region(self, x_min: float, y_min: float, x_max: float, y_max: float) -> Iterator[Feature]:
        c = self.cell_m
        i0, i1 = math.floor(x_min / c), math.floor(x_max / c)
        j0, j1 = math.floor(y_min / c), math.floor(y_max / c)
        if (i1 - i0 + 1) * (j1 - j0 + 1) > len(self.cells):  # huge region: scan what exists
            for bucket in self.cells.values():
                yield from bucket.values()
            return
        for i in range(i0, i1 + 1):
            for j in range(j0, j1 + 1):
                yield from self.cells.get((i, j), {}).values()


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------


def _finite(v: float, where: str) -> None:
    if not math.isfinite(v):
        raise InvalidFrame(f"{where} is not finite ({v!r})")


def validate_frame(frame, vehicle_id: str = "") -> str:
    """Check what the comparison relies on; returns the frame's vehicle id. Raises InvalidFrame."""
    vid = frame.vehicle_id or vehicle_id
    if not vid:
        raise InvalidFrame(f"frame {frame.frame_id!r} has no vehicle_id")
    if vehicle_id and frame.vehicle_id and frame.vehicle_id != vehicle_id:
        raise InvalidFrame(f"frame {frame.frame_id!r} of vehicle {frame.vehicle_id!r} in a batch of {vehicle_id!r}")
    if not frame.HasField("ego"):
        raise InvalidFrame(f"frame {frame.frame_id!r} has no ego pose")
    for name in ("x", "y", "heading"):
        v = getattr(frame.ego, name)
        _finite(v, f"frame {frame.frame_id!r} ego.{name}")
    if abs(frame.ego.x) > MAX_COORD or abs(frame.ego.y) > MAX_COORD:
        raise InvalidFrame(f"frame {frame.frame_id!r} ego position is out of range")
    for i, d in enumerate(frame.detections):
        where = f"frame {frame.frame_id!r} detections[{i}]"
        _finite(d.confidence, f"{where}.confidence")
        if not 0.0 <= d.confidence <= 1.0:
            raise InvalidFrame(f"{where}.confidence {d.confidence} is outside [0, 1]")
        if d.HasField("range_m"):
            _finite(d.range_m, f"{where}.range_m")
            if d.range_m < 0:
                raise InvalidFrame(f"{where}.range_m is negative")
        if d.HasField("bearing_rad"):
            _finite(d.bearing_rad, f"{where}.bearing_rad")
    return vid


class _Det:
    __slots__ = ("index", "d", "cls", "conf", "r", "b", "x", "y", "match", "cost", "confirmed")

    def __init__(self, index: int, d, r: float | None, b: float, x: float | None, y: float | None) -> None:
        self.index, self.d, self.cls, self.conf = index, d, d.cls, d.confidence
        self.r, self.b, self.x, self.y = r, b, x, y
        self.match: Feature | None = None
        self.confirmed = False

    @property
    def subject(self) -> str:
        return f"track:{self.d.track_id}" if self.d.track_id else f"det:{self.index}"


class _Pass:
    __slots__ = ("frames", "hits", "last_t")

    def __init__(self, t: float) -> None:
        self.frames, self.hits, self.last_t = 0, 0, t


class _Vehicle:
    __slots__ = ("last_seq", "last_t", "passes")

    def __init__(self) -> None:
        self.last_seq = 0
        self.last_t = -math.inf
        self.passes: dict[str, _Pass] = {}


@dataclass
class FrameResult:
    disagreements: list[events_pb2.Disagreement] = field(default_factory=list)
    duplicate: bool = False


# ---------------------------------------------------------------------------------------------
# The map
# ---------------------------------------------------------------------------------------------


class MapState:
    def __init__(self, tunables: Tunables | None = None) -> None:
        self.tun = tunables or Tunables()
        self.features: dict[str, Feature] = {}  # every feature, removed ones too
        self.grid = Grid(self.tun.grid_cell_m)  # active features only
        self.candidates: dict[str, Feature] = {}
        self.cand_grid = Grid(self.tun.grid_cell_m)
        self._cand_seq = 0
        self.vehicles: dict[str, _Vehicle] = {}
        self.pending: dict[str, Feature] = {}  # changed since last drained for publication
        self.clock = -math.inf  # latest frame time seen (seconds)
        self.frames = 0
        self.duplicates = 0
        self._next_sweep = -math.inf  # stream time of the next sweep

    # -- the map itself ------------------------------------------------------------------------

    def get(self, feature_id: str) -> Feature | None:
        return self.features.get(feature_id)

    def active(self) -> Iterator[Feature]:
        return (f for f in self.features.values() if not f.removed)

    def counts_by_source(self) -> dict[int, int]:
        out: dict[int, int] = {SEED: 0, FLEET: 0}
        for f in self.features.values():
            if not f.removed:
                out[f.source] = out.get(f.source, 0) + 1
        return out

    def query(self, region: tuple[float, float, float, float] | None = None, kinds: Iterable[int] = (), min_confidence: float = 0.0, include_removed: bool = False) -> list[Feature]:
        kinds = set(kinds)
        if region is None:
            pool: Iterable[Feature] = self.features.values() if include_removed else self.active()
        else:
            x0, y0, x1, y1 = region
            pool = list(self.grid.in_region(x0, y0, x1, y1))
            if include_removed:
                pool += [f for f in self.features.values() if f.removed]
        out = []
        for f in pool:
            if region is not None and not (region[0] <= f.x <= region[2] and region[1] <= f.y <= region[3]):
                continue
            if (kinds and f.kind not in kinds) or f.confidence < min_confidence or (f.removed and not include_removed):
                continue
            out.append(f)
        out.sort(key=lambda f: f.feature_id)
        return out

    def _mark(self, f: Feature, change: events_pb2.FeatureChange, t: float | None) -> None:
        if change != UPDATED or not f.change:  # the latest structural change wins; UPDATED never hides one
            f.change = change
        f.updated_at = t if t is not None else f.updated_at
        self.pending[f.feature_id] = f

    def _touch(self, f: Feature, t: float) -> None:
        f.updated_at = t
        self.pending[f.feature_id] = f

    def restore(self, event: events_pb2.MapFeatureUpdated | None, key: str | None = None) -> None:
        """Apply one record of the compacted features topic (a None value deletes the key)."""
        if event is None or not event.HasField("feature"):
            old = self.features.pop(key or "", None)
            if old is not None:
                self.grid.remove(old)
            return
        p = event.feature
        if p.kind not in KIND_CLASS or not p.feature_id:
            return
        old = self.features.pop(p.feature_id, None)
        if old is not None:
            self.grid.remove(old)
        f = Feature.from_proto(p, self.tun)
        f.updated_at = _seconds(event.updated_at) if event.HasField("updated_at") else None
        self.features[f.feature_id] = f
        if not f.removed:
            self.grid.add(f)

    def seed(self, protos: Iterable[map_pb2.MapFeature], *, replace: bool = False, only_new: bool = False, now: float) -> tuple[int, int, int]:
        """Load features as source SEED, idempotent by feature_id. `only_new`: keep features the map
        already has (a seed file at start-up must not undo what the fleet learned). `replace`: seeded
        features not in the list are marked removed. Returns (created, updated, removed)."""
        parsed = [check_feature(p) for p in protos]
        ids = {p.feature_id for p in parsed}
        if len(ids) != len(parsed):
            raise InvalidFeature("duplicate feature_id in the request")
        created = updated = removed = 0
        for p in parsed:
            f = self.features.get(p.feature_id)
            conf = p.confidence if p.confidence > 0 else 1.0
            if f is None:
                f = Feature(p.feature_id, KIND_CLASS[p.kind], p.x, p.y, p.heading, source=SEED, confidence=conf, attributes=dict(p.attributes), weight=self.tun.seed_weight)
                self.features[f.feature_id] = f
                self.grid.add(f)
                self._mark(f, CREATED, now)
                created += 1
                continue
            if only_new:
                continue
            same = f.cls == KIND_CLASS[p.kind] and f.x == p.x and f.y == p.y and f.heading == p.heading and f.attributes == dict(p.attributes) and f.source == SEED and not f.removed and f.confidence == conf
            if same:
                continue
            self.grid.remove(f)
            revived = f.removed
            f.cls, f.x, f.y, f.heading = KIND_CLASS[p.kind], p.x, p.y, p.heading
            f.attributes = dict(p.attributes)
            f.votes = {k: {v: self.tun.attr_switch_votes} for k, v in f.attributes.items()}
            f.source, f.confidence, f.removed, f.miss_passes, f.weight = SEED, conf, False, 0, self.tun.seed_weight
            self.grid.add(f)
            self._mark(f, CREATED if revived else UPDATED, now)
            updated += 1
        if replace:
            for f in list(self.features.values()):
                if f.source == SEED and not f.removed and f.feature_id not in ids:
                    self._remove(f, now)
                    removed += 1
        return created, updated, removed

    def _remove(self, f: Feature, t: float | None) -> None:
        f.removed = True
        self.grid.remove(f)
        self._mark(f, REMOVED, t)

    def drain(self, now_wall: float, interval_s: float, force: bool = False) -> list[events_pb2.MapFeatureUpdated]:
        """MapFeatureUpdated events to publish: structural changes (created, removed, moved
        attributes) at once, counters and small position refinements at most every interval_s."""
        out = []
        for fid, f in list(self.pending.items()):
            if not (force or f.change or now_wall - f.last_published >= interval_s):
                continue
            change = f.change or UPDATED
            if not f.published and change != REMOVED:
                change = CREATED
            event = events_pb2.MapFeatureUpdated(feature=f.to_proto(), change=change)
            _ts(f.updated_at if f.updated_at is not None else now_wall, event.updated_at)
            out.append(event)
            f.change, f.published, f.last_published = events_pb2.FEATURE_CHANGE_UNSPECIFIED, True, now_wall
            del self.pending[fid]
        return out

    # -- per frame -----------------------------------------------------------------------------

    def process_frame(self, frame, vehicle_id: str = "", fallback_t: float = 0.0) -> FrameResult:
        """Compare one (validated) frame with the map and learn from it."""
        tun = self.tun
        vid = frame.vehicle_id or vehicle_id
        veh = self.vehicles.get(vid)
        if veh is None:
            veh = self.vehicles[vid] = _Vehicle()
        seq = frame.sequence
        if seq and seq <= veh.last_seq:
            self.duplicates += 1
            return FrameResult(duplicate=True)  # redelivered (at-least-once) or out of order
        veh.last_seq = max(veh.last_seq, seq)
        t = _seconds(frame.captured_at) if frame.HasField("captured_at") else (veh.last_t if veh.last_t > -math.inf else fallback_t)
        veh.last_t = t
        if t > self.clock:
            self.clock = t
        self.frames += 1
        frame_id = frame.frame_id or f"{vid}:{seq}"
        ego = frame.ego
        ex, ey, h = ego.x, ego.y, ego.heading
        result = FrameResult()

        dets: list[_Det] = []
        for i, d in enumerate(frame.detections):
            if d.cls not in CLASS_KIND or d.confidence < tun.min_detection_conf or not d.HasField("bearing_rad"):
                continue
            if d.HasField("range_m"):
                x, y = project(ex, ey, h, d.range_m, d.bearing_rad)
                dets.append(_Det(i, d, d.range_m, d.bearing_rad, x, y))
            else:
                dets.append(_Det(i, d, None, d.bearing_rad, None, None))

        reach = tun.view_range_m + tun.assoc_radius_m + tun.assoc_range_frac * tun.view_range_m
        nearby = self.grid.near(ex, ey, reach)
        expected: dict[str, tuple[Feature, float, float]] = {}
        matchable: list[tuple[Feature, float, float]] = []
        det_classes = {d.cls for d in dets}
        f: Feature | None
        for f in nearby:
            dx, dy = f.x - ex, f.y - ey
            r = math.hypot(dx, dy)
            if r > reach:
                continue
            b = wrap(math.atan2(dy, dx) - h)
            if abs(b) > tun.half_fov_rad + min(1.0, tun.assoc_radius_m / max(r, 1e-6)):
                continue
            off_face = abs(wrap(f.heading - math.atan2(-dy, -dx)))
            if off_face > tun.match_facing_tol_rad + (tun.fleet_heading_slack_rad if f.source == FLEET else 0.0):
                continue
            if f.cls in det_classes:
                matchable.append((f, r, b))
            if (
                tun.min_range_m <= r <= tun.compare_range_m
                and abs(b) <= tun.compare_half_fov_rad
                and f.confidence >= tun.min_feature_conf
                # a seeded face must point at the car; a fleet feature must have been seen from here
                and (off_face <= tun.facing_tol_rad if f.source != FLEET else f.seen_from(-dx / r, -dy / r, tun.seen_from_min))
            ):
                expected[f.feature_id] = (f, r, b)

        if dets and matchable:
            self._associate(dets, matchable)

        # confirmed observations: refresh the map, compare attributes
        hits: set[str] = set()
        for d in dets:
            f = d.match
            if f is None or not d.confirmed:
                continue  # a loose match only spares a disagreement
            assert d.r is not None and d.x is not None and d.y is not None  # confirmed: located (_associate)
            f.observation_count += 1
            if f.first_seen is None:
                f.first_seen = t
            f.last_seen = t
            self._touch(f, t)
            if d.r > tun.map_range_m:
                continue
            hits.add(f.feature_id)
            w = d.conf / (1.0 + (d.r / tun.ref_range_m) ** 2)
            f.observe_position(d.x, d.y, w, tun.smoothing_cap)
            self.grid.moved(f)
            rf = max(math.hypot(ex - f.x, ey - f.y), 1e-6)
            f.observe_from((ex - f.x) / rf, (ey - f.y) / rf, w, f.source == FLEET)
            mismatched = self._compare_attributes(f, d)
            if mismatched:
                distance = math.hypot(f.x - ex, f.y - ey)
                result.disagreements.append(self._disagreement(vid, frame_id, frame, MISMATCH, f, d, distance, mismatched))

        # map without vision
        for f, r, _ in expected.values():
            if any(d.match is f for d in dets):
                continue
            f.miss_count += 1
            self._touch(f, t)
            result.disagreements.append(self._disagreement(vid, frame_id, frame, MISSING, f, None, r))

        # vision without map, and candidates for new features
        for d in dets:
            if d.match is not None or d.r is None or d.r > tun.compare_range_m:
                continue
            if d.conf >= tun.vision_only_conf:
                result.disagreements.append(self._disagreement(vid, frame_id, frame, EXTRA, None, d, d.r))
            if d.r <= tun.map_range_m:
                self._candidate(d, vid, ex, ey, h, t)

        self._passes(veh, expected, hits, t)
        if self.clock >= self._next_sweep:
            self.sweep()
        return result

    def _associate(self, dets: list[_Det], matchable: list[tuple[Feature, float, float]]) -> None:
        """Greedy one-to-one assignment by normalised gate distance."""
        tun = self.tun
        pairs = []
        for di, d in enumerate(dets):
            for fi, (f, r, b) in enumerate(matchable):
                if f.cls != d.cls:
                    continue
                db = abs(wrap(d.b - b))
                if db >= math.pi / 2:
                    continue
                lateral = r * math.sin(db)
                if lateral > tun.assoc_radius_m:
                    continue
                cost = (lateral / tun.assoc_radius_m) ** 2
                confirmed = True
                if d.r is not None:
                    along = abs(d.r - r * math.cos(db))
                    gate = tun.assoc_radius_m + tun.assoc_range_frac * r
                    if along > gate:
                        continue
                    cost += (along / gate) ** 2
                    confirmed = along <= tun.assoc_radius_m
                else:
                    confirmed = False  # matched by bearing only: not located, confirms nothing
                pairs.append((cost, di, fi, confirmed))
        pairs.sort(key=lambda p: p[0])
        used_f: set[int] = set()
        for _cost, di, fi, confirmed in pairs:
            d = dets[di]
            if d.match is not None or fi in used_f:
                continue
            d.match, d.confirmed = matchable[fi][0], confirmed
            used_f.add(fi)

    def _confident_attributes(self, d: _Det) -> dict[str, str]:
        tun = self.tun
        scores = d.d.attribute_scores
        out = {}
        for k, v in d.d.attributes.items():
            if k in tun.map_attributes and v and scores.get(k, d.conf) >= tun.attr_min_conf:
                out[k] = v
        return out

    def _compare_attributes(self, f: Feature, d: _Det) -> list[str]:
        attrs = self._confident_attributes(d)
        mismatched = sorted(k for k, v in attrs.items() if k in f.attributes and f.attributes[k] != v)
        changed = False
        for k, v in attrs.items():
            changed |= f.vote(k, v, 1.0, self.tun.attr_switch_votes)
        if changed:
            self._mark(f, UPDATED, f.last_seen)
        return mismatched

    def _candidate(self, d: _Det, vid: str, ex: float, ey: float, h: float, t: float) -> None:
        tun = self.tun
        assert d.r is not None and d.x is not None and d.y is not None  # only located detections seed candidates
        best: Feature | None = None
        best_cost = math.inf
        for c in self.cand_grid.near(d.x, d.y, tun.assoc_radius_m + tun.assoc_range_frac * tun.map_range_m):
            if c.cls != d.cls:
                continue
            r, b = observe(ex, ey, 0.0, c.x, c.y)
            db = abs(wrap(math.atan2(d.y - ey, d.x - ex) - b))
            lateral = r * math.sin(min(db, math.pi / 2))
            along = abs(d.r - r * math.cos(min(db, math.pi / 2)))
            gate = tun.assoc_radius_m + tun.assoc_range_frac * r
            if lateral > tun.assoc_radius_m or along > gate:
                continue
            if c.observation_count > 1 and not faces(ex, ey, c.x, c.y, c.heading, tun.match_facing_tol_rad + tun.fleet_heading_slack_rad):
                continue
            cost = (lateral / tun.assoc_radius_m) ** 2 + (along / gate) ** 2
            if cost < best_cost:
                best, best_cost = c, cost
        toward = ((ex - d.x) / max(d.r, 1e-6), (ey - d.y) / max(d.r, 1e-6))  # feature -> camera
        w = d.conf / (1.0 + (d.r / tun.ref_range_m) ** 2)
        if best is None:
            self._cand_seq += 1
            best = Feature(f"candidate/{self._cand_seq}", d.cls, d.x, d.y, math.atan2(toward[1], toward[0]), source=FLEET, confidence=0.0, weight=w, candidate=True)
            best.first_seen = t
            self.candidates[best.feature_id] = best
            self.cand_grid.add(best)
        else:
            best.observe_position(d.x, d.y, w, tun.smoothing_cap)
            self.cand_grid.moved(best)
        best.observe_from(toward[0], toward[1], w, True)
        best.observation_count += 1
        best.last_seen = t
        best.closest = min(best.closest, d.r)
        # a pass counts towards promotion once it saw the candidate in pass_min_frames frames
        # (a real sign is seen in most frames of a pass; false positives rarely twice in one place)
        last, seen = best.pass_vehicles.get(vid, (-math.inf, 0))
        seen = 1 if t - last > tun.pass_gap_s else seen + 1
        if seen == tun.pass_min_frames:
            best.passes += 1
        best.pass_vehicles[vid] = (t, seen)
        if len(best.pass_vehicles) > 64:
            oldest = min(best.pass_vehicles, key=lambda v: best.pass_vehicles[v][0])
            del best.pass_vehicles[oldest]
        attrs = d.d.attributes
        scores = d.d.attribute_scores
        transient = any(attrs.get(k) == v and scores.get(k, d.conf) >= tun.attr_min_conf for k, v in (("mount", "handheld"), ("temporary", "true")))
        if transient:
            best.transient += 1
        else:
            best.permanent += 1
        for k, v in self._confident_attributes(d).items():
            best.votes.setdefault(k, {})
            best.votes[k][v] = best.votes[k].get(v, 0.0) + 1.0
        if best.observation_count >= tun.promote_min_observations and best.passes >= tun.promote_min_passes and best.closest <= tun.promote_within_m and best.permanent > best.transient:
            self._promote(best, t)

    def _promote(self, c: Feature, t: float) -> None:
        tun = self.tun
        del self.candidates[c.feature_id]
        self.cand_grid.remove(c)
        for other in self.cand_grid.near(c.x, c.y, tun.assoc_radius_m):  # the same sign seen as two clusters
            if other.cls == c.cls and math.hypot(other.x - c.x, other.y - c.y) <= tun.assoc_radius_m:
                del self.candidates[other.feature_id]
                self.cand_grid.remove(other)
                c.observation_count += other.observation_count
        for f in self.grid.near(c.x, c.y, tun.assoc_radius_m):  # already on the map: a second view of it
            if f.cls == c.cls and math.hypot(f.x - c.x, f.y - c.y) <= tun.assoc_radius_m:
                f.observation_count += c.observation_count
                self._touch(f, t)
                return
        fid = fleet_feature_id(c.cls, c.x, c.y, tun.assoc_radius_m)
        existing = self.features.get(fid)
        n = 1
        while existing is not None and not existing.removed:  # two signs in one cell: suffix
            n += 1
            existing = self.features.get(f"{fid}~{n}")
        if n > 1:
            fid = f"{fid}~{n}"
        attrs = {k: max(v.items(), key=lambda kv: kv[1])[0] for k, v in c.votes.items() if v}
        conf = 1.0 - (1.0 - tun.hit_gain) ** c.passes
        f = existing if existing is not None else Feature(fid, c.cls, c.x, c.y, c.heading)
        f.cls, f.x, f.y, f.heading = c.cls, c.x, c.y, c.heading
        f.sectors, f.dir_x, f.dir_y = list(c.sectors), c.dir_x, c.dir_y
        f.attributes, f.votes = attrs, {k: dict(v) for k, v in c.votes.items()}
        f.source, f.confidence, f.removed, f.miss_passes, f.weight = FLEET, conf, False, 0, c.weight
        f.observation_count += c.observation_count
        f.first_seen = f.first_seen if f.first_seen is not None else c.first_seen
        f.last_seen = c.last_seen
        self.features[fid] = f
        self.grid.add(f)
        self._mark(f, CREATED, t)

    def _passes(self, veh: _Vehicle, expected: dict, hits: set[str], t: float) -> None:
        """A pass is one car's run of frames with the feature in its trusted view; only frames
        within map_range_m (where a confirmed detection is possible) make it conclusive."""
        gap, map_range = self.tun.pass_gap_s, self.tun.map_range_m
        for fid, (_f, r, _b) in expected.items():
            p = veh.passes.get(fid)
            if p is not None and t - p.last_t > gap:
                self._close_pass(fid, veh.passes.pop(fid), t)
                p = None
            if p is None:
                p = veh.passes[fid] = _Pass(t)
            p.frames += r <= map_range
            p.hits += fid in hits
            p.last_t = t
        if len(veh.passes) > len(expected):
            for fid in [k for k in veh.passes if k not in expected]:
                self._close_pass(fid, veh.passes.pop(fid), t)

    def _close_pass(self, fid: str, p: _Pass, t: float) -> None:
        tun = self.tun
        f = self.features.get(fid)
        if f is None or f.removed or p.frames < tun.pass_min_frames:
            return
        if p.hits:
            f.confidence += (1.0 - f.confidence) * tun.hit_gain
            f.miss_passes = 0
            self._touch(f, t)
            return
        f.confidence *= 1.0 - tun.miss_decay
        f.miss_passes += 1
        if f.miss_passes >= tun.stale_passes:
            self._remove(f, t)
        else:
            self._touch(f, t)

    def sweep(self, now: float | None = None) -> None:
        """Close the open passes of cars silent for vehicle_ttl_s and forget them, forget old
        candidates (bounded memory). Runs every SWEEP_EVERY_S of stream time (the latest frame time
        seen across all cars), or at `now`. Cars are judged silent only after vehicle_ttl_s because
        partitions are consumed at different speeds: one car's frames may lag another's by minutes."""
        tun = self.tun
        now = self.clock if now is None else now
        self._next_sweep = self.clock + SWEEP_EVERY_S
        for vid, veh in list(self.vehicles.items()):
            if now - veh.last_t > tun.vehicle_ttl_s:
                for fid, p in list(veh.passes.items()):
                    self._close_pass(fid, p, now)
                del self.vehicles[vid]
        for cid, c in list(self.candidates.items()):
            if now - (c.last_seen or now) > tun.candidate_ttl_s:
                del self.candidates[cid]
                self.cand_grid.remove(c)
        if len(self.candidates) > tun.max_candidates:
            for c in sorted(self.candidates.values(), key=lambda c: c.last_seen or 0.0)[: len(self.candidates) - tun.max_candidates]:
                del self.candidates[c.feature_id]
                self.cand_grid.remove(c)

    def _disagreement(self, vid: str, frame_id: str, frame, kind: events_pb2.DisagreementKind, f: Feature | None, d: _Det | None, distance: float, mismatched: list[str] | None = None) -> events_pb2.Disagreement:
        if f is not None:
            subject = f.feature_id
        else:
            assert d is not None  # a disagreement is about a feature, a detection or both
            subject = d.subject
        out = events_pb2.Disagreement(
            disagreement_id=disagreement_id(vid, frame_id, kind, subject),
            vehicle_id=vid,
            frame_id=frame_id,
            kind=kind,
            distance_m=distance,
            mismatched_attributes=mismatched or (),
        )
        if f is not None:
            out.feature.CopyFrom(f.to_proto())
        if d is not None:
            out.detection.CopyFrom(d.d)
        if frame.HasField("captured_at"):
            out.observed_at.CopyFrom(frame.captured_at)
        out.ego.CopyFrom(frame.ego)
        return out


def check_feature(p: map_pb2.MapFeature) -> map_pb2.MapFeature:
    """Validate a seeded feature; returns a copy with source SEED."""
    if not p.feature_id or len(p.feature_id) > 256:
        raise InvalidFeature("feature_id must be 1..256 characters")
    if p.kind not in KIND_CLASS:
        raise InvalidFeature(f"{p.feature_id}: kind must be one of {', '.join(map_pb2.FeatureKind.Name(k) for k in KIND_CLASS)}")
    for name in ("x", "y", "heading", "confidence"):
        if not math.isfinite(getattr(p, name)):
            raise InvalidFeature(f"{p.feature_id}: {name} is not finite")
    if abs(p.x) > MAX_COORD or abs(p.y) > MAX_COORD:
        raise InvalidFeature(f"{p.feature_id}: position out of range")
    if not 0.0 <= p.confidence <= 1.0:
        raise InvalidFeature(f"{p.feature_id}: confidence must be in [0, 1]")
    out = map_pb2.MapFeature()
    out.CopyFrom(p)
    out.source = SEED
    out.heading = wrap(p.heading) if abs(p.heading) > math.pi else p.heading
    return out
