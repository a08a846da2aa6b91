"""Seed files (JSON/YAML) and the simulator's map export."""

from __future__ import annotations

import math

import pytest

from longtail.mapvision.v1 import map_pb2

from map_vision.mapping import InvalidFeature
from map_vision.seed import dump_seed, load_seed_file, parse_seed, simulator_world, write_seed_file

YAML = """
features:
  - {feature_id: stop_sign/00001, kind: stop_sign, x: 12.5, y: -4.3, heading: 3.1416, attributes: {mount: pole}}
  - {feature_id: light-1, kind: FEATURE_KIND_TRAFFIC_LIGHT, x: 1, y: 2, confidence: 0.8}
"""
JSON_LIST = '[{"featureId": "s", "kind": 1, "x": 0, "y": 0, "source": "FEATURE_SOURCE_FLEET"}]'


@pytest.mark.parametrize(
    "text,expected",
    [
        (YAML, [("stop_sign/00001", map_pb2.FEATURE_KIND_STOP_SIGN, 12.5, {"mount": "pole"}), ("light-1", map_pb2.FEATURE_KIND_TRAFFIC_LIGHT, 1.0, {})]),
        (JSON_LIST, [("s", map_pb2.FEATURE_KIND_STOP_SIGN, 0.0, {})]),
        ("", []),
        ("features: []", []),
    ],
)
def test_parse_seed(text, expected):
    features = parse_seed(text)
    assert [(f.feature_id, f.kind, f.x, dict(f.attributes)) for f in features] == expected
    assert all(f.source == map_pb2.FEATURE_SOURCE_SEED for f in features)  # always SEED


@pytest.mark.parametrize(
    "text,message",
    [
        ("features: [{feature_id: a, kind: bus_stop}]", "features\\[0\\]"),
        ("features: [{feature_id: a, kind: stop_sign, x: .nan}]", "features\\[0\\]: .*NaN"),
        ("features: [{feature_id: a, kind: stop_sign, x: 'NaN'}]", "x is not finite"),
        ("features: [{feature_id: a, kind: stop_sign, colour: red}]", "colour"),
        ("[{feature_id: a, kind: stop_sign}, {feature_id: a, kind: stop_sign}]", "duplicate feature_id"),
        ("signs: []", "unknown top-level keys"),
        ("42", "expected a list"),
        ("features: [1]", "expected a mapping"),
        ("{", "not JSON or YAML"),
    ],
)
def test_parse_seed_errors(text, message):
    with pytest.raises(InvalidFeature, match=message):
        parse_seed(text, "map.yaml")


def test_seed_file_round_trip(tmp_path):
    features = parse_seed(YAML)
    path = write_seed_file(features, tmp_path / "map.json")
    assert load_seed_file(path) == features
    assert parse_seed(dump_seed(features)) == features


def test_simulator_adapter_exports_an_imperfect_map():
    sim = simulator_world(world_seed=1, blocks=3, missing_rate=0.3, stale_rate=0.3, map_seed=1)
    truth = {t.feature_id: t for t in sim.truth}
    permanent = {fid for fid, t in truth.items() if t.permanent}
    seeded = {f.feature_id: f for f in sim.seed_map}
    assert seeded and set(seeded) <= permanent and len(seeded) < len(permanent)  # some are missing
    moved = [fid for fid, f in seeded.items() if math.hypot(f.x - truth[fid].x, f.y - truth[fid].y) > 1.0]
    assert moved  # and some are stale
    poses = sim.drive(0, 50)
    assert len(poses) == 50 and math.hypot(poses[-1].x - poses[0].x, poses[-1].y - poses[0].y) > 10
    assert parse_seed(dump_seed(sim.seed_map)) == sim.seed_map  # a simulator export is a valid seed file
