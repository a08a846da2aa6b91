"""Camera rendering and ground truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from longtail.common.v1 import common_pb2
from longtail.synthetic.frames import approach_pose
from longtail.synthetic.render import DEFAULT_CAMERA, Camera, GroundTruthObject, render
from longtail.synthetic.world import STOP_SIGN, TRAFFIC_LIGHT, Car, World, WorldConfig, wrap_angle


@pytest.fixture(scope="module")
def world() -> World:
    return World(WorldConfig(occluded_rate=0.3, handheld_rate=0.1, gate_rate=0.1, temporary_rate=0.1, modifier_rate=0.2), seed=0)


def _plain_stop(world: World):
    return next(o for o in world.objects_of(STOP_SIGN) if o.attributes["occlusion"] == "none" and o.attributes["mount"] == "pole")


@pytest.mark.parametrize("size", [32, 64, 96])
def test_render_shapes_types_and_determinism(world, size):
    pose = approach_pose(_plain_stop(world), 12.0)
    img, gt = render(world, pose, size=size)
    assert img.shape == (size, size, 3) and img.dtype == np.uint8
    img2, gt2 = render(world, pose, size=size)
    assert np.array_equal(img, img2) and gt == gt2
    img3, _ = render(world, pose, size=size, noise_seed=99)
    assert not np.array_equal(img, img3)  # lighting/noise vary
    assert all(isinstance(o, GroundTruthObject) for o in gt)


def test_ground_truth_boxes_and_geometry_along_a_drive(world):
    car = Car(world, seed=5)
    half = math.radians(DEFAULT_CAMERA.hfov_deg) / 2
    seen = 0
    for _ in range(600):
        pose = car.step(0.1)
        _img, gt = render(world, pose)
        for o in gt:
            seen += 1
            x0, y0, x1, y1 = o.box
            assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
            assert o.range_m <= DEFAULT_CAMERA.max_range_m
            assert abs(o.bearing_rad) <= half + 0.35  # partly visible objects at the border
            assert 0.0 <= o.visible_fraction <= 1.0
            assert o.cls in ("stop_sign", "traffic_light", "red_round_sign", "other_sign")
    assert seen > 50


def test_objects_behind_beyond_range_or_facing_away_are_not_ground_truth(world):
    sign = _plain_stop(world)
    ahead = approach_pose(sign, 12.0)
    assert sign.object_id in {o.object_id for o in render(world, ahead)[1]}
    behind = common_pb2.Pose(x=ahead.x, y=ahead.y, heading=wrap_angle(ahead.heading + math.pi))
    assert sign.object_id not in {o.object_id for o in render(world, behind)[1]}
    passed = approach_pose(sign, -6.0)  # drove past it
    assert sign.object_id not in {o.object_id for o in render(world, passed)[1]}
    far = approach_pose(sign, 75.0)
    assert sign.object_id not in {o.object_id for o in render(world, far)[1]}
    short = Camera(max_range_m=8.0)
    assert sign.object_id not in {o.object_id for o in render(world, ahead, camera=short)[1]}


def test_objects_shrink_with_distance_and_are_drawn_where_the_box_is(world):
    sign = _plain_stop(world)
    sizes = []
    for d in (8.0, 15.0, 30.0):
        img, gt = render(world, approach_pose(sign, d))
        o = next(o for o in gt if o.object_id == sign.object_id)
        sizes.append(o.box_px)
        assert abs(o.range_m - math.hypot(d, 2.45)) < 1.0
    assert sizes[0] > sizes[1] > sizes[2] > 0
    img, gt = render(world, approach_pose(sign, 8.0))
    o = next(o for o in gt if o.object_id == sign.object_id)
    x0, y0, x1, y1 = (np.array(o.box) * 64).round().astype(int)
    patch = img[y0:y1, x0:x1].astype(int)
    red = (patch[..., 0] > patch[..., 1] + 60) & (patch[..., 0] > patch[..., 2] + 60)
    assert red.mean() > 0.4


def test_foliage_covers_occluded_signs(world):
    sign = next(o for o in world.objects_of(STOP_SIGN) if o.attributes["occlusion"] == "foliage" and o.attributes["mount"] == "pole")
    img, gt = render(world, approach_pose(sign, 8.0))
    o = next(o for o in gt if o.object_id == sign.object_id)
    assert o.attributes["occlusion"] == "foliage" and o.visible_fraction < 0.6
    x0, y0, x1, y1 = (np.array(o.box) * 64).round().astype(int)
    patch = img[y0:y1, x0:x1].astype(int)
    green = (patch[..., 1] > patch[..., 0] + 30) & (patch[..., 1] > patch[..., 2])
    assert green.mean() > 0.25


def test_traffic_light_state_is_ground_truth(world):
    light = world.objects_of(TRAFFIC_LIGHT)[0]
    _img, gt = render(world, approach_pose(light, 15.0))
    o = next(o for o in gt if o.object_id == light.object_id)
    assert o.attributes["light_state"] in ("red", "yellow", "green")


def test_ground_truth_serialises():
    o = GroundTruthObject("stop_sign/00001", "stop_sign", (0.1, 0.2, 0.3, 0.4), {"occlusion": "foliage"}, 12.0, 0.1, 0.4, False, 9.0)
    assert GroundTruthObject.from_dict(o.to_dict()) == o
    det = o.to_detection()
    assert det.cls == "stop_sign" and det.attributes["occlusion"] == "foliage" and det.box.y_max == pytest.approx(0.4)


def test_a_parked_vehicle_is_ground_truth_with_its_lights_and_its_lamps_glow_when_they_are_on():
    from longtail.synthetic.world import VEHICLE

    parked = World(WorldConfig(vehicle_rate=0.3), seed=2)

    def behind(vehicle, metres: float):
        h = vehicle.approach_heading
        return common_pb2.Pose(x=vehicle.anchor_x - math.cos(h) * metres, y=vehicle.anchor_y - math.sin(h) * metres, heading=h)

    amber = {}
    for lights in ("off", "hazard"):
        vehicle = next(o for o in parked.objects_of(VEHICLE) if o.attributes["lights"] == lights)
        img, truth = render(parked, behind(vehicle, 8.0), noise_seed=0)
        seen = [t for t in truth if t.object_id == vehicle.object_id]
        assert seen and seen[0].cls == VEHICLE and seen[0].attributes == {"lights": lights}
        x0, y0, x1, y1 = (int(v * 64) for v in seen[0].box)
        patch = img[y0 : y1 + 1, x0 : x1 + 1].astype(int)
        amber[lights] = int(((patch[..., 0] > 200) & (patch[..., 1] > 120) & (patch[..., 2] < 90)).sum())
    assert amber["hazard"] >= 2 and amber["off"] == 0
