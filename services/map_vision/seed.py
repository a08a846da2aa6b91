"""Map seed files (JSON or YAML) and the one adapter to the simulator's map export.

A seed file is either a list of features or `{"features": [...]}`; each feature is the protobuf
JSON form of `mapvision.v1.MapFeature` (snake_case or camelCase keys), where `kind` may also be
the class name (`stop_sign`, `traffic_light`):

    features:
      - {feature_id: stop_sign/00001, kind: stop_sign, x: 12.5, y: -4.3, heading: 3.1416,
         attributes: {mount: pole, modifier: none}}

`confidence` defaults to 1; `source` is always SEED.

`python -m map_vision.seed --out map.json [--world-seed 0 --blocks 12 --missing-rate 0.1 --stale-rate 0.05]`
writes the simulator's deliberately imperfect map as a seed file.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

from longtail.mapvision.v1 import map_pb2

from map_vision.mapping import CLASS_KIND, InvalidFeature, check_feature


def _parse_feature(item: Any, where: str) -> map_pb2.MapFeature:
    if not isinstance(item, dict):
        raise InvalidFeature(f"{where}: expected a mapping, got {type(item).__name__}")
    item = dict(item)
    kind = item.get("kind")
    if isinstance(kind, str) and kind.lower() in CLASS_KIND:
        item["kind"] = CLASS_KIND[kind.lower()]
    if "attributes" in item and isinstance(item["attributes"], dict):
        item["attributes"] = {str(k): str(v) for k, v in item["attributes"].items()}
    try:
        feature = json_format.ParseDict(item, map_pb2.MapFeature())
    except json_format.ParseError as exc:
        raise InvalidFeature(f"{where}: {exc}") from None
    try:
        return check_feature(feature)
    except InvalidFeature as exc:
        raise InvalidFeature(f"{where}: {exc}") from None


def parse_seed(text: str, name: str = "<seed>") -> list[map_pb2.MapFeature]:
    """Features of a JSON or YAML seed document (YAML is a superset of JSON)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidFeature(f"{name}: not JSON or YAML: {exc}") from None
    if doc is None:
        return []
    if isinstance(doc, dict):
        if set(doc) - {"features"}:
            raise InvalidFeature(f"{name}: unknown top-level keys {sorted(set(doc) - {'features'})} (expected 'features')")
        doc = doc.get("features") or []
    if not isinstance(doc, list):
        raise InvalidFeature(f"{name}: expected a list of features or {{features: [...]}}")
    features = [_parse_feature(item, f"{name}: features[{i}]") for i, item in enumerate(doc)]
    seen: set[str] = set()
    for f in features:
        if f.feature_id in seen:
            raise InvalidFeature(f"{name}: duplicate feature_id {f.feature_id!r}")
        seen.add(f.feature_id)
    return features


def load_seed_file(path: str | Path) -> list[map_pb2.MapFeature]:
    path = Path(path)
    return parse_seed(path.read_text(encoding="utf-8"), str(path))


def dump_seed(features: list[map_pb2.MapFeature]) -> str:
    """JSON seed document (round-trips through parse_seed)."""
    items = [json_format.MessageToDict(f, preserving_proto_field_name=True) for f in features]
    return json.dumps({"features": items}, indent=1, sort_keys=True)


def write_seed_file(features: list[map_pb2.MapFeature], path: str | Path) -> Path:
    path = Path(path)
    path.write_text(dump_seed(features), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# The simulator adapter: the only place that knows fleet_sim's API.
# ------------------------------------------------------------------------------------------


@dataclass
class SimulatedWorld:
    seed_map: list[map_pb2.MapFeature]  # the deliberately imperfect map export
    truth: list  # synthetic.TruthFeature: every stop sign and traffic light as it really is
    drive: Callable[[int, int, float], list]  # (car seed, frames, dt) -> ego poses along the roads


def simulator_world(world_seed: int = 0, blocks: int | None = None, missing_rate: float = 0.1, stale_rate: float = 0.05, map_seed: int = 0) -> SimulatedWorld:
    """The adapter to longtail.synthetic.world (the only code here that knows its API): the simulator's
    imperfect map export (`World.map_features`: some features missing, some moved along their
    road and stale, ids = world object ids), the ground truth, and cars driving its roads."""
    from longtail.synthetic.world import Car, World, WorldConfig

    from map_vision.synthetic import TruthFeature

    world = World(WorldConfig() if blocks is None else WorldConfig(blocks=blocks), seed=world_seed)
    truth = [TruthFeature(o.object_id, o.cls, o.x, o.y, o.facing, dict(o.attributes), o.permanent) for o in world.objects if o.cls in CLASS_KIND]

    def drive(car_seed: int, frames: int, dt: float = 0.1) -> list:
        car = Car(world, seed=car_seed, vehicle_id=f"car-{car_seed}")
        return [car.step(dt) for _ in range(frames)]

    seed_map = list(world.map_features(missing_rate=missing_rate, stale_rate=stale_rate, seed=map_seed))
    return SimulatedWorld(seed_map, truth, drive)


def simulator_map(world_seed: int = 0, blocks: int | None = None, missing_rate: float = 0.1, stale_rate: float = 0.05, map_seed: int = 0) -> list[map_pb2.MapFeature]:
    return simulator_world(world_seed, blocks, missing_rate, stale_rate, map_seed).seed_map


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write the simulator's map as a map-vision seed file.")
    ap.add_argument("--out", required=True, help="output path (.json)")
    ap.add_argument("--world-seed", type=int, default=0)
    ap.add_argument("--blocks", type=int, default=None)
    ap.add_argument("--missing-rate", type=float, default=0.1)
    ap.add_argument("--stale-rate", type=float, default=0.05)
    ap.add_argument("--map-seed", type=int, default=0)
    args = ap.parse_args(argv)
    features = simulator_map(args.world_seed, args.blocks, args.missing_rate, args.stale_rate, args.map_seed)
    write_seed_file(features, args.out)
    print(f"wrote {len(features)} features to {args.out}")


if __name__ == "__main__":
    main()
