"""map-vision geometry: projection, its inverse, field of view, ids, tunables and their MAP_VISION_* variables (table-driven)."""

from __future__ import annotations

import hashlib
import math
import os

import pytest

from longtail import config
from longtail.config import ConfigError
from longtail.mapvision.v1 import events_pb2

from map_vision.mapping import Tunables, disagreement_id, faces, fleet_feature_id, in_view, observe, project, sector, wrap
from map_vision.settings import MapVisionSettings

PI = math.pi


@pytest.mark.parametrize(
    "ego,range_m,bearing,expected",
    [
        ((0, 0, 0), 10, 0, (10, 0)),  # straight ahead, heading east
        ((0, 0, 0), 10, PI / 2, (0, 10)),  # bearing is left-positive
        ((0, 0, 0), 10, -PI / 2, (0, -10)),
        ((0, 0, PI / 2), 10, 0, (0, 10)),  # heading north
        ((0, 0, PI), 4, 0, (-4, 0)),
        ((5, 5, -PI / 2), 2, -PI / 2, (3, 5)),  # heading south, object to the right = west
        ((100, -50, PI / 4), math.sqrt(2) * 10, 0, (110, -40)),
        ((1, 2, 0.3), 0, 1.0, (1, 2)),  # zero range: the ego position
    ],
)
def test_project(ego, range_m, bearing, expected):
    x, y = project(*ego, range_m, bearing)
    assert (x, y) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("heading", [-3.0, -PI / 2, -0.4, 0.0, 0.7, PI / 2, 3.1, PI])
@pytest.mark.parametrize("range_m,bearing", [(1.0, 0.0), (12.5, 0.3), (35.0, -0.5), (60.0, 0.52), (8.0, -3.0)])
def test_observe_inverts_project(heading, range_m, bearing):
    x, y = project(7.0, -3.0, heading, range_m, bearing)
    r, b = observe(7.0, -3.0, heading, x, y)
    assert r == pytest.approx(range_m, abs=1e-9)
    assert wrap(b - bearing) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("angle,expected", [(0.0, 0.0), (PI, -PI), (-PI, -PI), (3 * PI / 2, -PI / 2), (-3 * PI / 2, PI / 2), (7.0, 7.0 - 2 * PI)])
def test_wrap(angle, expected):
    assert wrap(angle) == pytest.approx(expected)


# ego at the origin heading east; a sign 20 m ahead facing back at the car (heading pi)
@pytest.mark.parametrize(
    "x,y,facing,kw,expected",
    [
        (20, 0, PI, {}, True),
        (20, 0, 0.0, {}, False),  # seen from behind
        (20, 0, PI / 2, {}, False),  # edge-on
        (20, 0, None, {}, True),  # facing unknown: not checked
        (70, 0, PI, {}, False),  # beyond max range
        (3, 0, PI, {"min_range": 5.0}, False),  # too close
        (20, 15, PI, {}, False),  # 37 deg off the heading: outside +-30 deg
        (20, 10, PI, {}, True),  # 26.6 deg
        (20, 10, PI, {"half_fov": 0.4}, False),
        (-20, 0, 0.0, {}, False),  # behind the car
        (20, 10, -2.0, {}, True),  # face 60 deg off the line of sight: within 75 deg
    ],
)
def test_in_view(x, y, facing, kw, expected):
    args = dict(max_range=60.0, half_fov=math.radians(30), facing_tol=math.radians(75), min_range=0.0)
    args.update(kw)
    assert in_view(0.0, 0.0, 0.0, x, y, facing, **args) is expected


def test_faces_and_sectors():
    assert faces(0, 0, 10, 0, PI, 0.1) and not faces(0, 0, 10, 0, 0.0, 1.5)
    assert sector(1, 0) == 6 and sector(-1, -1e-12) == 0 and sector(0, 1) == 9
    assert len({sector(math.cos(a), math.sin(a)) for a in [i * 2 * PI / 12 + 0.1 for i in range(12)]}) == 12


def test_disagreement_id_is_the_documented_hash():
    expected = hashlib.sha256(b"car-1/car-1:42/DISAGREEMENT_KIND_MAP_WITHOUT_VISION/stop_sign/00012").hexdigest()
    assert disagreement_id("car-1", "car-1:42", events_pb2.DISAGREEMENT_KIND_MAP_WITHOUT_VISION, "stop_sign/00012") == expected
    a = disagreement_id("car-1", "car-1:42", events_pb2.DISAGREEMENT_KIND_VISION_WITHOUT_MAP, "track:7")
    assert a != disagreement_id("car-1", "car-1:42", events_pb2.DISAGREEMENT_KIND_VISION_WITHOUT_MAP, "det:0")
    assert len(a) == 64 and a == a.lower()


@pytest.mark.parametrize(
    "cls,x,y,cell,expected",
    [
        ("stop_sign", 10.5, -0.1, 4.0, "stop_sign/2_-1"),
        ("traffic_light", 0.0, 0.0, 4.0, "traffic_light/0_0"),
        ("stop_sign", -4.0, 7.99, 4.0, "stop_sign/-1_1"),
        ("stop_sign", 399.9, 200.1, 5.0, "stop_sign/79_40"),
    ],
)
def test_fleet_feature_id(cls, x, y, cell, expected):
    assert fleet_feature_id(cls, x, y, cell) == expected


@pytest.mark.parametrize(
    "env,check",
    [
        ({}, lambda t: t == Tunables()),
        ({"MAP_VISION_STALE_PASSES": "3", "MAP_VISION_ASSOC_RADIUS_M": "2.5"}, lambda t: (t.stale_passes, t.assoc_radius_m) == (3, 2.5)),
        ({"MAP_VISION_MAP_ATTRIBUTES": "mount, modifier,gate"}, lambda t: t.map_attributes == ("mount", "modifier", "gate")),
        ({"MAP_VISION_SEED_FILE": "/x.json", "OTHER": "1"}, lambda t: t == Tunables()),  # not a tunable: ignored here
    ],
)
def test_tunables_from_env(env, check, monkeypatch):
    assert check(_settings(env, monkeypatch).tunables())


@pytest.mark.parametrize(
    "env,message",
    [
        ({"MAP_VISION_STALE_PASSES": "three"}, "MAP_VISION_STALE_PASSES is invalid"),
        ({"MAP_VISION_ASSOC_RADIUS_M": "nan"}, "assoc_radius_m"),
        ({"MAP_VISION_HIT_GAIN": "1.5"}, "hit_gain"),
        ({"MAP_VISION_MAP_RANGE_M": "50"}, "map_range_m <= compare_range_m"),
        ({"MAP_VISION_STALE_PASSES": "0"}, "stale_passes"),
    ],
)
def test_tunables_from_env_errors_name_the_problem(env, message, monkeypatch):
    with pytest.raises(ConfigError, match=message):
        _settings(env, monkeypatch)


def _settings(env, monkeypatch) -> MapVisionSettings:
    for name in [n for n in os.environ if n.startswith("MAP_VISION_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return config.load(MapVisionSettings)
