"""The experiment's scenario, fixed before any arm runs: the long-tail case, its held-out unit-test
suites, the operator's seed set, and the triggers.

The suites cover what the fleet sees of the case (distance 4-30 m, the car anywhere in its lane
and turning slightly, every occlusion degree the world has, every mount, the lighting range);
the seed set is what an operator gathers by hand when asked for the case: a few dozen close-ups
of a handful of lightly occluded signs. Measured offline (docs/demo.md): the seed set alone takes
the occluded suite from ~40% to ~89%; about 25 occluded fleet frames more reach ~98%. So the suite
measures what the fleet adds, which a suite in the seed set's own narrow look did not (it reached
99% with the seed set alone).

Held out: every suite is rendered from a world seed no training source uses (the fleet drives
`World(WorldConfig(), seed)` for small seeds, the seed set 20_011/20_018/20_025 (one per case) and 20_012, rehearsal
`TRAIN_WORLD_SEED + 1000 + seed`, the bootstrap model `TRAIN_WORLD_SEED + 3`), and suite cases
are never in a dataset (the label store excludes them, and every dataset here names its samples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from longtail.synthetic.render import GroundTruthObject
from longtail.synthetic.world import OTHER_SIGN, RED_ROUND_SIGN, STOP_SIGN, TRAFFIC_LIGHT, World, WorldConfig, WorldObject

DETECTED = "any(d.cls == stop_sign and d.conf >= 0.5)"
# A plain stop sign is detected, and as a plain one: a candidate that calls every sign "handheld"
# passes the handheld suite and fails this (measured offline: fine-tuned on frames where the case
# and the plain signs differed in distance and pose, 96% of plain signs got the case's attribute).
PLAIN = "any(d.cls == stop_sign and d.conf >= 0.5 and d.attr.mount == pole and d.attr.modifier == none and d.attr.temporary == false)"
FLEET_LIKE = {"road": 0.4, STOP_SIGN: 0.3, RED_ROUND_SIGN: 0.1, OTHER_SIGN: 0.1, TRAFFIC_LIGHT: 0.1}


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    task: str
    predicate: str
    world: WorldConfig
    world_seed: int
    mix: dict
    distance: tuple[float, float]
    accept: Callable[[WorldObject | None, list[GroundTruthObject]], bool]
    lateral_sd: float = 1.0
    heading_sd: float = 0.1
    sample_seed: int = 50  # of the suite's poses: fixed per suite, so a suite does not depend on which others run beside it


@dataclass(frozen=True)
class LongTailCase:
    """One long-tail case of a task: what makes a frame a positive, and where it is measured."""

    name: str  # e.g. "occluded"
    task: str
    label_predicate: str  # over a label: the detector's positives
    world: WorldConfig  # a world where every instance is the case (suite, seed set)
    suite: str
    truth: Callable[[list], bool]  # over a frame's ground truth (dicts or GroundTruthObjects)
    description: str = ""
    suite_predicate: str = DETECTED  # what a suite case must show: detected (and, for some cases, its attribute)
    distance: tuple[float, float] = (4.0, 30.0)  # of the suite's approaches
    min_px: float = 6  # a suite case's sign is at least this tall
    trigger_min_height: float = 0.0  # the detector trigger fires only on a stop sign at least this tall (image fraction)
    world_seed: int = 10_779  # of the suite's held-out world, one per case (see the module docstring)
    seed_world: int = 20_011  # of the seed set's close-ups, one per case (+ 100 x the experiment's seed)

    def is_positive(self, objects: list) -> bool:
        return self.truth(objects)


def _attr(o, key: str) -> str:
    return (o.get("attributes") or {}).get(key, "") if isinstance(o, dict) else o.attributes.get(key, "")


def _cls(o) -> str:
    return o.get("cls", "") if isinstance(o, dict) else o.cls


OCCLUDED = LongTailCase(
    name="occluded",
    task="stop_sign",
    label_predicate="any(d.cls == stop_sign and d.attr.occlusion == foliage)",
    world=WorldConfig().only(occluded_rate=1.0),
    suite="stop_sign.occluded",
    truth=lambda objects: any(_cls(o) == STOP_SIGN and _attr(o, "occlusion") == "foliage" for o in objects),
    description="stop signs partly hidden by foliage",
)


# Attribute cases: the network must say what it sees, not only that a sign is there. The bootstrap
# model (common cases only) detects these signs but always answers mount "pole", modifier "none",
# temporary "false" (0% on their suites), and the seed set alone does not move that. Fleet frames of
# the case do, fine-tuned for 12 epochs (measured offline on fleet-like frames where half the signs
# show the case, so the case and the plain signs differ only by it): handheld 95% with 61 positives,
# temporary 82% with 80, on a gate 59% with 86, "except right turn" 0% with 152 (at 6 epochs: 30%,
# 32%, 11%, 0%; the plate needs ~500 positives: 99%). See docs/demo.md. Their detector triggers fire
# only on signs at least 8 px tall: the plate and the person are a pixel or two farther away, so
# there the seed-trained detector cannot tell the case from any stop sign, and the suite measures
# 8 px and up anyway. What limits them on the fleet is exposure, not the trigger: the fleet's world
# (seed 0) has 5 handheld and 11 temporary signs among 239 stop signs, and one 80-car drive of 24,000
# frames showed a handheld sign in none and a temporary one in 26 (measured offline).
def _attribute_case(name: str, attr: str, value: str, rate: str, suite: str, description: str, world_seed: int, seed_world: int, **kw) -> LongTailCase:
    """A stop sign whose attribute `attr` is `value` (its world: every sign so, by `rate`), scored on
    the attribute at 4-20 m; its detector trigger fires on signs at least 8 px tall."""
    return LongTailCase(
        name=name,
        task="stop_sign",
        label_predicate=f"any(d.cls == stop_sign and d.attr.{attr} == {value})",
        world=WorldConfig().only(**{rate: 1.0}),
        suite=suite,
        truth=lambda objects: any(_cls(o) == STOP_SIGN and _attr(o, attr) == value for o in objects),
        description=description,
        suite_predicate=f"any(d.cls == stop_sign and d.conf >= 0.5 and d.attr.{attr} == {value})",
        distance=(4.0, 20.0),
        trigger_min_height=8 / 64,
        world_seed=world_seed,
        seed_world=seed_world,
        **kw,
    )


EXCEPT_RIGHT_TURN = _attribute_case("except_right_turn", "modifier", "except_right_turn", "modifier_rate", "stop_sign.except-right-turn", 'stop signs with an "except right turn" plate', 10_800, 20_018, min_px=8)
HANDHELD = _attribute_case("handheld", "mount", "handheld", "handheld_rate", "stop_sign.handheld", "stop signs held by a person (school crossings, road works)", 10_801, 20_025)
ON_GATE = _attribute_case("on_gate", "mount", "gate", "gate_rate", "stop_sign.on-gate", "stop signs on a gate (level crossings, site entrances)", 10_802, 20_032)
TEMPORARY = _attribute_case("temporary", "temporary", "true", "temporary_rate", "stop_sign.temporary", "temporary stop signs on a portable stand (road works)", 10_803, 20_039)
CASES = {c.name: c for c in (OCCLUDED, EXCEPT_RIGHT_TURN, HANDHELD, ON_GATE, TEMPORARY)}


def visible(cls: str, min_px: float) -> Callable:
    """The approached object is in view, at least `min_px` tall and not cut by the border."""

    def accept(target: WorldObject | None, gt: list[GroundTruthObject]) -> bool:
        return target is not None and any(o.object_id == target.object_id and o.cls == cls and o.box_px >= min_px and not o.truncated for o in gt)

    return accept


def no_stop_sign(target, gt: list[GroundTruthObject]) -> bool:
    return not any(o.cls == STOP_SIGN for o in gt)


@dataclass
class Scenario:
    """`cases`: the long-tail cases worked at the same time (one suite, seed set, detector and
    detector trigger each; one fleet and one label budget for all of them)."""

    cases: tuple[LongTailCase, ...] = (OCCLUDED,)
    suite_cases: int = 100
    seed_positives: int = 20
    seed_signs: int = 6  # distinct signs the operator photographed
    seed_negatives: int = 4  # fleet-like negatives per positive (the detector's false alarms fall ~2x from 2 to 4)
    suites: list[SuiteSpec] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.cases or len({c.name for c in self.cases}) != len(self.cases):
            raise ValueError("a scenario needs at least one long-tail case, each once")
        if not self.suites:
            self.suites = [
                # Each case over the fleet's diversity of it, on its own held-out world.
                SuiteSpec(c.suite, c.task, c.suite_predicate, c.world, c.world_seed, {STOP_SIGN: 1.0}, c.distance, visible(STOP_SIGN, c.min_px))
                for c in self.cases
            ] + [
                SuiteSpec("stop_sign.regressions", "stop_sign", PLAIN, WorldConfig().common_only(), 10_778, {STOP_SIGN: 1.0}, (4.0, 25.0), visible(STOP_SIGN, 6), sample_seed=51),
                SuiteSpec(
                    "stop_sign.no-false-alarms", "stop_sign", "not any(d.cls == stop_sign and d.conf >= 0.5)", WorldConfig(), 10_780, {RED_ROUND_SIGN: 0.5, OTHER_SIGN: 0.3, TRAFFIC_LIGHT: 0.2}, (4.0, 20.0), no_stop_sign, sample_seed=52
                ),
                SuiteSpec(
                    "traffic_light.regressions",
                    "traffic_light",
                    "any(d.cls == traffic_light and d.conf >= 0.5)",
                    WorldConfig().common_only(),
                    10_781,
                    {TRAFFIC_LIGHT: 1.0},
                    (4.0, 14.0),
                    visible(TRAFFIC_LIGHT, 12),
                    lateral_sd=0.5,
                    heading_sd=0.05,
                    sample_seed=53,
                ),
            ]

    @property
    def case_suites(self) -> list[str]:
        return [c.suite for c in self.cases]

    @property
    def tasks(self) -> list[str]:
        return sorted({c.task for c in self.cases})

    def cases_shown(self, objects: list) -> list[str]:
        """The names of the cases a frame's ground truth shows."""
        return [c.name for c in self.cases if c.truth(objects)]

    def suite_frames(self, spec: SuiteSpec):
        from longtail.synthetic.frames import sample_frames

        return sample_frames(World(spec.world, seed=spec.world_seed), self.suite_cases, seed=spec.sample_seed, mix=spec.mix, distance=spec.distance, accept=spec.accept, max_tries=50, lateral_sd=spec.lateral_sd, heading_sd=spec.heading_sd)

    def seed_close_ups(self, case: LongTailCase, seed: int = 0):
        """Close-ups (5-10 m, centred) of `seed_signs` signs of `case` (lightly occluded ones for
        the occluded case): what an operator gathers by hand when asked for the case."""
        from longtail.synthetic.frames import sample_frames

        world = World(case.world, seed=case.seed_world + 100 * seed)
        light = [o for o in world.objects_of(STOP_SIGN) if o.foliage is None or o.foliage.covered_fraction < 0.55][: self.seed_signs]
        chosen = {o.object_id for o in light}
        return sample_frames(world, self.seed_positives, seed=71, mix={STOP_SIGN: 1.0}, distance=(5.0, 10.0), accept=visible(STOP_SIGN, 8), max_tries=50, lateral_sd=0.2, heading_sd=0.02, objects=lambda o: o.object_id in chosen)

    def fleet_like_negatives(self, seed: int = 0):
        """`seed_negatives` times as many fleet-like frames (road, plain stop signs, look-alikes) as
        one case has positives, shared by every case's detector: a detector that only saw signs
        close up fires on trees and red signs all over the fleet."""
        from longtail.synthetic.frames import sample_frames

        return sample_frames(World(WorldConfig().common_only(), seed=20_012 + 100 * seed), self.seed_negatives * self.seed_positives, seed=72, mix=FLEET_LIKE, distance=(4.0, 30.0))


@dataclass(frozen=True)
class TriggerPlan:
    """A trigger the operator creates: `source` is "triggered" (the data engine's) or "random" (the
    baselines' content-blind pool)."""

    trigger_id: str
    source: str
    expression: str
    fleet: bool = False  # fleet-side (evaluated by the trigger evaluator), else on the car
    every_frame: bool = False
    min_interval_s: float = 1.0
    per_car_hour: int = 0
    priority: int = 0
    case: str = ""  # the long-tail case a detector trigger is for ("": shared by every case)


def detector_trigger_id(case: str, suffix: str) -> str:
    return f"detector-stop-{suffix}" if case == OCCLUDED.name else f"detector-{case.replace('_', '-')}-{suffix}"


def trigger_plans(suffix: str, detectors: dict[str, str], duration_s: float, per_car: int, random_per_car: int) -> list[TriggerPlan]:
    """The operator's triggers: one per case's beamed-down detector (`detectors`: case name ->
    detector name, for the detectors that were published), the stop-sign triggers every case
    shares, and the random pool. `per_car` (uploads per car and drive, each trigger) and
    `random_per_car` are the per-car-hour limits: a drive is shorter than the limit's hour on the
    cars' simulated clock, and every drive has new cars."""
    plans = []
    for case, detector in detectors.items():
        # The beamed-down detector's score for the frame (its newest version under its bare name),
        # where the car's model sees a stop sign at all: measured offline on 16,000 fleet frames,
        # the score alone (> 0.9) fires on 1% of frames at 25% precision (trees, red signs); with
        # the model's stop sign on 0.27% at 93%, keeping half of the visible occluded signs.
        # Every frame (at most two a second) rather than on the rising edge: an approach to a sign
        # gives several frames at different distances, which is the diversity the suite measures
        # (and enough labelled uploads to measure the trigger's yield in a few drives). Tried on
        # the fleet: also firing where the score alone is > 0.9 gave 64 labelled uploads in the
        # first drive but only 8 true (13%; this rule: 7 of 7), so no more positives for the arm.
        tall = CASES[case].trigger_min_height
        sign = f"any(d.cls == stop_sign and d.height >= {tall:g})" if tall else "any(d.cls == stop_sign)"
        plans.append(TriggerPlan(detector_trigger_id(case, suffix), "triggered", f'score("{detector}") > 0.5 and {sign}', every_frame=True, min_interval_s=0.5, per_car_hour=5 * per_car, priority=3, case=case))
    return plans + [
        # Map-vision disagreement, fleet-side: the map has a stop sign the car should see and its
        # model does not (occluded signs look like that; so do stale map features).
        TriggerPlan(f"map-stop-{suffix}", "triggered", "map_disagrees(stop_sign, kind=missing)", fleet=True, min_interval_s=2.0, per_car_hour=per_car, priority=2),
        # Uncertainty: a stop sign the shadow model sees without confidence.
        TriggerPlan(f"unsure-stop-{suffix}", "triggered", "any(d.cls == stop_sign and d.conf < 0.6)", min_interval_s=2.0, per_car_hour=per_car, priority=1),
        # Flicker: a stop sign that comes and goes between frames.
        TriggerPlan(f"flicker-stop-{suffix}", "triggered", "any(d.cls == stop_sign and d.conf >= 0.25) and not sustained(any(d.cls == stop_sign and d.conf >= 0.25), frames=3)", min_interval_s=2.0, per_car_hour=per_car, priority=0),
        # Content-blind periodic sampling of fleet frames: the random and uncertainty arms' pool.
        TriggerPlan(f"random-{suffix}", "random", "true", every_frame=True, min_interval_s=max(0.5, duration_s / random_per_car * 0.95), per_car_hour=random_per_car),
    ]
