"""The simulated car camera: a forward-facing pinhole camera that renders the procedural world to
a small RGB image and returns the ground truth of what it sees.

Drawing is vectorised numpy on small per-object windows: the ground is a per-pixel projection onto
the road grid (road, centre line, sidewalk, grass, distance haze), every object is a set of
anti-aliased primitives (octagon, disk, rectangle, triangle, thick segment) evaluated in its own
face plane by intersecting each pixel's ray with that plane, so perspective and foreshortening come
for free. Objects are painted far to near. A frame is a pure function of (world, pose, size,
camera, noise_seed); without `noise_seed` the lighting and sensor noise are derived from the pose,
so re-rendering a pose gives identical bytes.

Ground truth holds every labelled object (stop signs, traffic lights, red round signs, other
signs) whose face points towards the camera, within `camera.max_range_m`, and whose box overlaps
the image. Signs seen from behind are drawn (a grey back plate) but are not ground truth.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from longtail.common.v1 import common_pb2
from longtail.synthetic.world import (
    LABELLED_CLASSES,
    OTHER_SIGN,
    RED_ROUND_SIGN,
    STOP_SIGN,
    TRAFFIC_LIGHT,
    TREE,
    VEHICLE,
    World,
    WorldObject,
)


@dataclass(frozen=True)
class Camera:
    hfov_deg: float = 60.0  # horizontal field of view (narrow enough that signs 10-25 m away span 4-10 px at 64 px)
    height_m: float = 1.5  # above the ground
    horizon: float = 0.42  # image row of the horizon, as a fraction of the height (slight pitch down)
    max_range_m: float = 60.0  # objects farther than this are neither drawn nor ground truth
    min_box_px: float = 1.0  # smaller boxes (either side) are not ground truth
    min_in_image: float = 0.3  # a box must have at least this fraction of its area inside the image
    min_facing_cos: float = 0.25  # signs seen more edge-on than ~75 degrees are not ground truth

    def focal_px(self, size: int) -> float:
        return (size / 2.0) / math.tan(math.radians(self.hfov_deg) / 2.0)


DEFAULT_CAMERA = Camera()


@dataclass
class GroundTruthObject:
    """One object visible in one frame (simulator ground truth; never sent with telemetry)."""

    object_id: str
    cls: str
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max, normalised to [0, 1]
    attributes: dict[str, str]
    range_m: float  # horizontal distance camera -> object
    bearing_rad: float  # relative to ego heading, left positive
    visible_fraction: float = 1.0  # 1 - foliage cover, times the fraction of the box inside the image
    truncated: bool = False  # box cut by the image border
    box_px: float = 0.0  # box height in pixels (before clipping)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["box"] = list(self.box)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GroundTruthObject:
        d = dict(d)
        d["box"] = tuple(d["box"])
        return cls(**d)

    def to_detection(self) -> common_pb2.Detection:
        """As a perfect annotation (confidence 1)."""
        det = common_pb2.Detection(
            cls=self.cls,
            confidence=1.0,
            box=common_pb2.BoundingBox(x_min=self.box[0], y_min=self.box[1], x_max=self.box[2], y_max=self.box[3]),
            range_m=self.range_m,
            bearing_rad=self.bearing_rad,
        )
        for k, v in self.attributes.items():
            det.attributes[k] = v
            det.attribute_scores[k] = 1.0
        det.class_scores[self.cls] = 1.0
        return det


# ------------------------------------------------------------------------------------------
# colours (float RGB 0..255)
# ------------------------------------------------------------------------------------------


def _c(*rgb: float) -> np.ndarray:
    return np.array(rgb, dtype=np.float32)


RED = _c(196, 22, 28)
WHITE = _c(236, 236, 236)
BACK_GREY = _c(150, 152, 155)
POLE = _c(110, 110, 115)
DARK = _c(30, 30, 32)
BLACK = _c(15, 15, 15)
ORANGE = _c(240, 120, 20)
YELLOW_SIGN = _c(235, 190, 30)
BLUE_SIGN = _c(30, 80, 180)
GREEN_SIGN = _c(20, 120, 60)
SKIN = _c(215, 170, 130)
JEANS = _c(40, 50, 90)
VEST = _c(250, 200, 20)
TRUNK = _c(95, 65, 40)
LEAVES = (_c(40, 110, 35), _c(60, 140, 45), _c(30, 85, 30))
LAMP_ON = {"red": _c(255, 40, 30), "yellow": _c(255, 200, 20), "green": _c(40, 255, 110)}
LAMP_OFF = _c(55, 55, 50)
ROAD = _c(92, 92, 96)
SIDEWALK = _c(150, 148, 140)
GRASS = _c(88, 130, 62)
LINE = _c(220, 200, 80)
HAZE = _c(170, 185, 200)
SKY_TOP, SKY_LOW = _c(90, 140, 215), _c(185, 205, 230)
CAR_BODY = (_c(150, 30, 35), _c(40, 70, 140), _c(200, 200, 205))
CAR_GLASS = _c(45, 55, 65)
TAIL_OFF, HAZARD_ON, HEADLIGHT = _c(110, 25, 25), _c(255, 175, 20), _c(240, 240, 210)
POLICE_RED, POLICE_BLUE = _c(255, 30, 30), _c(40, 90, 255)
GATE_BAR_M = 4.3  # closed gate bar: from the curb post to the road centre line


@dataclass(frozen=True)
class _Rays:
    focal: float
    cx: float
    v0: float
    us: np.ndarray  # [size] pixel-centre columns
    vs: np.ndarray  # [size] pixel-centre rows
    ground_rows: int  # first ground row
    dist: np.ndarray  # [G, size] forward distance of ground pixels
    lat: np.ndarray  # [G, size] lateral (left) offset of ground pixels
    keep: np.ndarray  # [G, size, 1] 1 - haze blend
    haze_rgb: np.ndarray  # [G, size, 3] haze colour times its blend
    sky: np.ndarray  # [size, size, 3] sky gradient (rows above the horizon used)
    noise: np.ndarray  # [2*size, 2*size, 3] sensor noise tile


@lru_cache(maxsize=8)
def _rays(size: int, camera: Camera) -> _Rays:
    f = camera.focal_px(size)
    cx = size / 2.0
    v0 = camera.horizon * size
    us = np.arange(size, dtype=np.float64) + 0.5
    vs = np.arange(size, dtype=np.float64) + 0.5
    first = int(math.floor(v0 + 0.5))
    gv = vs[first:]
    dist = f * camera.height_m / np.maximum(gv - v0, 1e-3)
    dist = np.minimum(dist, 400.0)[:, None] * np.ones((1, size))
    lat = (cx - us)[None, :] * dist / f
    haze = np.clip((dist - 50.0) / 150.0, 0.0, 1.0)[..., None].astype(np.float32)
    keep, haze_rgb = 1.0 - haze, haze * HAZE
    dist, lat = dist.astype(np.float32), lat.astype(np.float32)
    t = np.clip(vs / max(v0, 1.0), 0.0, 1.0)[:, None, None]
    sky = (SKY_TOP * (1 - t) + SKY_LOW * t) * np.ones((1, size, 1), dtype=np.float32)
    noise = np.random.default_rng(1234).normal(0.0, 4.0, size=(2 * size, 2 * size, 3)).astype(np.float32)
    return _Rays(f, cx, v0, us, vs, first, dist, lat, keep, haze_rgb, sky.astype(np.float32), noise)


_PALETTE = np.stack([GRASS, SIDEWALK, ROAD, LINE])  # ground class index -> colour


def _background(world: World, px: float, py: float, c: float, s: float, rays: _Rays, img: np.ndarray) -> None:
    cfg = world.config
    hw = cfg.road_half_width_m
    b = cfg.block_m
    wx = rays.dist * c - rays.lat * s
    wx += px
    wy = rays.dist * s + rays.lat * c
    wy += py
    g = rays.ground_rows
    img[:g] = rays.sky[:g]
    lim = world.size_m + hw + 3.0
    inside = (wx > -hw - 3.0) & (wx < lim) & (wy > -hw - 3.0) & (wy < lim)
    # distance to the nearest road centre line of each family
    ax = np.abs(np.mod(wx + b / 2.0, b) - b / 2.0)
    ay = np.abs(np.mod(wy + b / 2.0, b) - b / 2.0)
    on_v = ax < hw
    on_h = ay < hw
    cls = ((ax < hw + 2.0) | (ay < hw + 2.0)).astype(np.uint8)  # sidewalk
    cls += on_v | on_h  # road
    # dashed centre line, not through intersections
    dash = (ax < 0.15) & ~on_h & (np.mod(wy, 6.0) < 3.0)
    dash |= (ay < 0.15) & ~on_v & (np.mod(wx, 6.0) < 3.0)
    cls += dash
    cls *= inside
    img[g:] = _PALETTE[cls] * rays.keep + rays.haze_rgb


class _Painter:
    """Paints primitives given in an object's face-plane coordinates (metres; x to the right as
    seen from the front, y up from the face centre) into a window of the image."""

    def __init__(self, img: np.ndarray, rays: _Rays, cam: tuple[float, float, float], cs: tuple[float, float], origin: tuple[float, float, float], ang: float, extent: tuple[float, float, float, float]) -> None:
        self.ok = False
        size = img.shape[0]
        f = rays.focal
        c, s = cs
        ox, oy, oz = origin
        nx, ny = math.cos(ang), math.sin(ang)
        tx, ty = -ny, nx  # face tangent: the viewer's right, seen from the front
        x0, x1, y0, y1 = extent
        us, vs = [], []
        for xa in (x0, x1):
            dx, dy = ox + tx * xa - cam[0], oy + ty * xa - cam[1]
            cf = max(dx * c + dy * s, 0.3)
            cl = -dx * s + dy * c
            us.append(rays.cx - f * cl / cf)
            for bb in (y0, y1):
                vs.append(rays.v0 - f * (oz + bb - cam[2]) / cf)
        c0 = max(int(math.floor(min(us))), 0)
        c1 = min(int(math.ceil(max(us))) + 1, size)
        r0 = max(int(math.floor(min(vs))), 0)
        r1 = min(int(math.ceil(max(vs))) + 1, size)
        if c1 <= c0 or r1 <= r0:
            return
        # rays of the window's pixels, intersected with the face plane
        a = ((rays.cx - rays.us[c0:c1]) / f)[None, :]
        bz = ((rays.v0 - rays.vs[r0:r1]) / f)[:, None]
        # direction = fwd + a*left + bz*up; fwd = (c, s), left = (-s, c)
        rn = (c * nx + s * ny) + a * (-s * nx + c * ny)
        rn = np.where(np.abs(rn) < 1e-9, -1e-9, rn)
        t = ((ox - cam[0]) * nx + (oy - cam[1]) * ny) / rn
        t = np.where(t > 0.0, t, 1e6)  # behind the camera: far away, never painted
        dirx, diry = c - a * s, s + a * c
        self.mx = (cam[0] - ox + t * dirx) * tx + (cam[1] - oy + t * diry) * ty
        self.my = (cam[2] - oz) + t * bz
        self.ppm = f / max((ox - cam[0]) * c + (oy - cam[1]) * s, 0.3)  # pixels per metre at the face
        self.win = img[r0:r1, c0:c1]
        self.ok = True

    def alpha(self, sd: np.ndarray) -> np.ndarray:
        a = 0.5 - sd * self.ppm
        np.minimum(a, 1.0, out=a)
        np.maximum(a, 0.0, out=a)
        return a

    def fill(self, sd: np.ndarray, color: np.ndarray, opacity: float = 1.0) -> None:
        a = self.alpha(sd)[..., None] * opacity
        self.win *= 1.0 - a
        self.win += a * color

    # signed distances (metres)
    def octagon(self, cx: float, cy: float, r: float) -> np.ndarray:
        x, y = np.abs(self.mx - cx), np.abs(self.my - cy)
        return np.maximum(np.maximum(x, y), (x + y) * (1.0 / math.sqrt(2.0))) - r

    def disk(self, cx: float, cy: float, r: float) -> np.ndarray:
        return np.hypot(self.mx - cx, self.my - cy) - r

    def rect(self, cx: float, cy: float, hx: float, hy: float) -> np.ndarray:
        return np.maximum(np.abs(self.mx - cx) - hx, np.abs(self.my - cy) - hy)

    def diamond(self, cx: float, cy: float, r: float) -> np.ndarray:
        return (np.abs(self.mx - cx) + np.abs(self.my - cy)) * (1.0 / math.sqrt(2.0)) - r * (1.0 / math.sqrt(2.0))

    def triangle_down(self, cx: float, cy: float, r: float) -> np.ndarray:
        """Inverted equilateral triangle with inradius r."""
        x, y = self.mx - cx, self.my - cy
        s3 = math.sqrt(3.0) / 2.0
        return np.maximum(np.maximum(y, -0.5 * y + s3 * x), -0.5 * y - s3 * x) - r

    def segment(self, x0: float, y0: float, x1: float, y1: float, half: float) -> np.ndarray:
        half = max(half, 0.35 / self.ppm)  # keep thin parts at least faintly visible
        dx, dy = x1 - x0, y1 - y0
        ll = dx * dx + dy * dy or 1e-9
        t = np.clip(((self.mx - x0) * dx + (self.my - y0) * dy) / ll, 0.0, 1.0)
        return np.hypot(self.mx - x0 - t * dx, self.my - y0 - t * dy) - half


def _stop_face(p: _Painter, r: float, back: bool) -> None:
    if back:
        p.fill(p.octagon(0, 0, r), BACK_GREY)
        return
    p.fill(p.octagon(0, 0, r), WHITE)
    p.fill(p.octagon(0, 0, r * 0.88), RED)
    p.fill(p.rect(0, 0, r * 0.62, r * 0.16), WHITE)


def _draw(p: _Painter, o: WorldObject, back: bool, post_dx: float, light_state: str) -> None:
    """Draw object `o` (face centre at the origin); `post_dx` is the horizontal offset of its
    pole/person/stand in face coordinates."""
    z = o.z
    hw, hh = o.width / 2.0, o.height / 2.0
    if o.cls == TREE:
        p.fill(p.segment(0, -z, 0, 0, 0.2), TRUNK)
        k = int(o.kind or 0)
        p.fill(p.disk(0, 0, hw), LEAVES[k % 3])
        p.fill(p.disk(-hw * 0.45, hw * 0.35, hw * 0.55), LEAVES[(k + 1) % 3])
        p.fill(p.disk(hw * 0.4, -hw * 0.2, hw * 0.5), LEAVES[(k + 2) % 3])
        return
    if o.cls == STOP_SIGN:
        mount = o.attributes.get("mount", "pole")
        temporary = o.attributes.get("temporary") == "true"
        if mount == "handheld":
            # a person standing beside the sign, holding it on a short stick
            px = post_dx
            p.fill(p.segment(px - 0.12, -z, px - 0.1, -z + 0.85, 0.1), JEANS)
            p.fill(p.segment(px + 0.12, -z, px + 0.1, -z + 0.85, 0.1), JEANS)
            p.fill(p.rect(px, -z + 1.15, 0.25, 0.33), VEST)
            p.fill(p.disk(px, -z + 1.68, 0.14), SKIN)
            p.fill(p.segment(px - 0.2, -z + 1.35, 0.0, -z + 1.05, 0.06), VEST)  # arm
            p.fill(p.segment(0.0, -hh, 0.0, -z + 1.0, 0.03), DARK)  # stick
        elif mount == "gate":
            if o.attributes.get("gate") == "closed":
                # striped bar across the lane at 1 m, sign hanging on it
                p.fill(p.segment(post_dx, -z, post_dx, -z + 1.1, 0.08), POLE)
                x_end = post_dx - math.copysign(GATE_BAR_M, post_dx or 1.0)
                n = 8
                for k in range(n):
                    a0 = post_dx + (x_end - post_dx) * k / n
                    a1 = post_dx + (x_end - post_dx) * (k + 1) / n
                    p.fill(p.segment(a0, -z + 1.0, a1, -z + 1.0, 0.08), RED if k % 2 == 0 else WHITE)
            else:
                # raised bar: vertical at the post
                p.fill(p.segment(post_dx, -z, post_dx, -z + 1.0, 0.08), POLE)
                n = 8
                for k in range(n):
                    p.fill(p.segment(post_dx, -z + 1.0 + 0.5 * k, post_dx, -z + 1.5 + 0.5 * k, 0.08), RED if k % 2 == 0 else WHITE)
        elif temporary:
            # portable stand: orange and white striped base
            p.fill(p.segment(0.0, -z + 0.6, 0.0, 0.0, 0.04), POLE)
            p.fill(p.rect(0.0, -z + 0.3, 0.45, 0.3), ORANGE)
            p.fill(p.rect(0.0, -z + 0.3, 0.45, 0.07), WHITE)
        else:
            p.fill(p.segment(0.0, -z, 0.0, 0.0, 0.05), POLE)
        _stop_face(p, hw, back)
        if o.attributes.get("modifier", "none") != "none" and not back:
            top = -hh - 0.06
            p.fill(p.rect(0.0, top - hh * 0.3, hw * 0.85, hh * 0.3), WHITE)
            p.fill(p.rect(-hw * 0.2, top - hh * 0.17, hw * 0.55, hh * 0.05), BLACK)
            p.fill(p.rect(-hw * 0.1, top - hh * 0.42, hw * 0.65, hh * 0.05), BLACK)
        if o.foliage is not None:
            for cx, cy, r, shade in o.foliage.blobs:
                p.fill(p.disk(cx * hw, cy * hh, r * hw), LEAVES[shade % 3])
        return
    if o.cls == VEHICLE:
        _vehicle(p, o, back, hw, hh)
        return
    if o.cls == TRAFFIC_LIGHT:
        p.fill(p.segment(0.0, -z, 0.0, -hh, 0.08), POLE)
        if back:
            p.fill(p.rect(0, 0, hw, hh), DARK)
            return
        p.fill(p.rect(0, 0, hw, hh), DARK)
        for state, cy in (("red", 0.62), ("yellow", 0.0), ("green", -0.62)):
            color = LAMP_ON[state] if state == light_state else LAMP_OFF
            p.fill(p.disk(0.0, cy * hh, hw * 0.62), color)
        return
    # roadside signs on a pole
    p.fill(p.segment(0.0, -z, 0.0, 0.0, 0.05), POLE)
    if o.cls == RED_ROUND_SIGN:
        if back:
            p.fill(p.disk(0, 0, hw), BACK_GREY)
        elif o.kind == "no_entry":
            p.fill(p.disk(0, 0, hw), RED)
            p.fill(p.rect(0, 0, hw * 0.65, hw * 0.17), WHITE)
        else:  # speed limit: white disk, red ring, dark digits
            p.fill(p.disk(0, 0, hw), RED)
            p.fill(p.disk(0, 0, hw * 0.72), WHITE)
            p.fill(p.rect(-hw * 0.2, 0, hw * 0.12, hw * 0.35), BLACK)
            p.fill(p.rect(hw * 0.2, 0, hw * 0.12, hw * 0.35), BLACK)
        return
    if o.cls == OTHER_SIGN:
        if o.kind == "yield":
            if back:
                p.fill(p.triangle_down(0, 0, hw * 0.5), BACK_GREY)
            else:
                p.fill(p.triangle_down(0, 0, hw * 0.5), RED)
                p.fill(p.triangle_down(0, 0, hw * 0.28), WHITE)
        elif o.kind == "warning":
            p.fill(p.diamond(0, 0, hw), BACK_GREY if back else DARK)
            if not back:
                p.fill(p.diamond(0, 0, hw * 0.88), YELLOW_SIGN)
                p.fill(p.rect(0, hw * 0.1, hw * 0.08, hw * 0.3), BLACK)
        elif o.kind == "info":
            p.fill(p.rect(0, 0, hw, hh), BACK_GREY if back else BLUE_SIGN)
            if not back:
                p.fill(p.rect(0, 0, hw * 0.35, hh * 0.5), WHITE)
        else:  # street name
            p.fill(p.rect(0, 0, hw, hh), BACK_GREY if back else GREEN_SIGN)
            if not back:
                p.fill(p.rect(0, 0, hw * 0.75, hh * 0.15), WHITE)


def _vehicle(p: _Painter, o: WorldObject, back: bool, hw: float, hh: float) -> None:
    """A parked car seen from behind (its front, `back`, from the other side): wheels, body,
    window, lamps; caution lights are bright amber (hazard) or a red-and-blue bar (police)."""
    lights = o.attributes.get("lights", "off")
    for side in (-1.0, 1.0):
        p.fill(p.rect(side * hw * 0.7, -hh - 0.05, 0.25, 0.22), BLACK)
    p.fill(p.rect(0.0, -hh * 0.25, hw, hh * 0.6), CAR_BODY[int(o.kind or 0) % len(CAR_BODY)])
    p.fill(p.rect(0.0, hh * 0.55, hw * 0.72, hh * 0.32), CAR_GLASS)
    lamp = HEADLIGHT if back else HAZARD_ON if lights != "off" else TAIL_OFF
    for side in (-1.0, 1.0):
        if lamp is HAZARD_ON:  # the glow of a flashing lamp: legible from afar, like the stylised signs
            p.fill(p.disk(side * hw * 0.7, -hh * 0.15, 0.5), HAZARD_ON, opacity=0.55)
        p.fill(p.disk(side * hw * 0.7, -hh * 0.15, 0.3), lamp)
    if lights == "police":
        p.fill(p.rect(-0.45, hh + 0.18, 0.45, 0.2), POLICE_RED)
        p.fill(p.rect(0.45, hh + 0.18, 0.45, 0.2), POLICE_BLUE)


def _frame_rng(world: World, x: float, y: float, h: float, noise_seed: int | None) -> np.random.Generator:
    if noise_seed is None:
        key = f"{world.seed}:{x:.3f}:{y:.3f}:{h:.4f}".encode()
        noise_seed = zlib.crc32(key)
    return np.random.default_rng(noise_seed)


def render(world: World, pose, size: int = 64, camera: Camera | None = None, noise_seed: int | None = None) -> tuple[np.ndarray, list[GroundTruthObject]]:
    """Render the camera of a car at `pose` (anything with x, y, heading: e.g. common.v1.Pose).
    Returns (image uint8 [size, size, 3], ground truth objects sorted by range)."""
    camera = camera or DEFAULT_CAMERA
    rays = _rays(size, camera)
    px, py, h = float(pose.x), float(pose.y), float(pose.heading)
    c, s = math.cos(h), math.sin(h)
    img = np.empty((size, size, 3), dtype=np.float32)
    _background(world, px, py, c, s, rays, img)

    ch = camera.height_m
    cam = (px, py, ch)
    dx = world.xs - px
    dy = world.ys - py
    fx = dx * c + dy * s
    lx = -dx * s + dy * c
    half = math.tan(math.radians(camera.hfov_deg) / 2.0)
    rng_max = camera.max_range_m
    near = (fx > 0.3) & (fx < rng_max + 40.0) & (np.abs(lx) < fx * half + 12.0)
    idx = np.nonzero(near)[0]
    dist = np.hypot(dx[idx], dy[idx])
    keep = dist <= np.where(world.is_tree[idx], rng_max + 30.0, rng_max)
    idx, dist = idx[keep], dist[keep]
    order = np.argsort(-dist, kind="stable")
    truths: list[GroundTruthObject] = []
    f = rays.focal
    for k, r in zip(idx[order].tolist(), dist[order].tolist()):
        o = world.objects[k]
        if o.cls == TREE:
            ang = math.atan2(py - o.y, px - o.x)  # billboard facing the camera
        else:
            ang = o.facing
        nx, ny = math.cos(ang), math.sin(ang)
        tx, ty = -ny, nx  # viewer's right, seen from the front
        facing_cos = ((px - o.x) * nx + (py - o.y) * ny) / max(r, 1e-6)
        if abs(facing_cos) < 0.05:
            continue  # edge-on: invisible
        back = facing_cos < 0
        post_dx = (o.post_x - o.x) * tx + (o.post_y - o.y) * ty
        hw, hh = o.width / 2.0, o.height / 2.0
        x0, x1 = min(-hw, post_dx - 0.5), max(hw, post_dx + 0.5)
        y1 = hh
        if o.cls == STOP_SIGN and o.attributes.get("mount") == "gate":
            x0, x1 = x0 - GATE_BAR_M, x1 + GATE_BAR_M
            y1 = max(hh, -o.z + 5.2)
        if o.foliage is not None:
            x0, x1, y1 = x0 - hw, x1 + hw, y1 + hh
        if o.cls == VEHICLE:
            y1 = hh + 0.45  # the light bar
        painter = _Painter(img, rays, cam, (c, s), (o.x, o.y, o.z), ang, (x0 - 0.1, x1 + 0.1, -o.z, y1 + 0.1))
        if painter.ok:
            _draw(painter, o, back, post_dx, o.attributes.get("light_state", ""))
        if o.cls not in LABELLED_CLASSES or back or facing_cos < camera.min_facing_cos:
            continue
        # ground-truth box: the projected face corners
        us, vs = [], []
        for a in (-hw, hw):
            ex, ey = o.x + tx * a - px, o.y + ty * a - py
            cf = ex * c + ey * s
            if cf <= 0.3:
                break
            us.append(rays.cx - f * (-ex * s + ey * c) / cf)
            vs.append(rays.v0 - f * (o.z - hh - ch) / cf)
            vs.append(rays.v0 - f * (o.z + hh - ch) / cf)
        else:
            u0, u1, v0, v1 = min(us), max(us), min(vs), max(vs)
            if u1 - u0 < camera.min_box_px or v1 - v0 < camera.min_box_px:
                continue
            cu0, cu1, cv0, cv1 = max(u0, 0.0), min(u1, size), max(v0, 0.0), min(v1, size)
            if cu1 <= cu0 or cv1 <= cv0:
                continue
            inside = (cu1 - cu0) * (cv1 - cv0) / ((u1 - u0) * (v1 - v0))
            if inside < camera.min_in_image:
                continue
            covered = o.foliage.covered_fraction if o.foliage is not None else 0.0
            truths.append(
                GroundTruthObject(
                    object_id=o.object_id,
                    cls=o.cls,
                    box=(cu0 / size, cv0 / size, cu1 / size, cv1 / size),
                    attributes=dict(o.attributes),
                    range_m=float(r),
                    bearing_rad=math.atan2(float(lx[k]), float(fx[k])),
                    visible_fraction=(1.0 - covered) * inside,
                    truncated=inside < 0.999,
                    box_px=v1 - v0,
                )
            )

    frng = _frame_rng(world, px, py, h, noise_seed)
    gain = frng.uniform(0.72, 1.15) * (1.0 + frng.uniform(-0.05, 0.05, size=3)).astype(np.float32)
    oy, ox = frng.integers(0, size, size=2)
    img *= gain.astype(np.float32)
    img += rays.noise[oy : oy + size, ox : ox + size]
    np.clip(img, 0.0, 255.0, out=img)
    truths.sort(key=lambda t: t.range_m)
    return img.astype(np.uint8), truths
