"""The arms of the experiment: one small class per sampling strategy. Each arm trains on the same
seed set plus the fleet uploads it picks, `budget` more per iteration (the same budget for every
arm), from its pool. A new strategy is one class with a `pick`."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PoolSample:
    """A labelled fleet upload an arm may pick."""

    sample_id: str
    trigger_id: str
    captured_ns: int
    bucket: str = ""
    object_key: str = ""
    content_type: str = ""


@dataclass
class Arm:
    name: str
    source: str = ""  # which triggers' uploads form its pool: "triggered", "random", or "" (none)
    description: str = ""
    picked: list[str] = field(default_factory=list)

    @property
    def uses_fleet(self) -> bool:
        return bool(self.source)

    def available(self, pool: Sequence[PoolSample]) -> list[PoolSample]:
        taken = set(self.picked)
        return [s for s in pool if s.sample_id not in taken]

    def pick(self, pool: Sequence[PoolSample], n: int, context: ArmContext) -> list[str]:
        """Choose up to `n` of `pool` (the arm's not yet picked samples); adds them to `picked`."""
        chosen = self.choose(self.available(pool), n, context)[:n]
        self.picked.extend(chosen)
        return chosen

    def choose(self, pool: list[PoolSample], n: int, context: ArmContext) -> list[str]:
        raise NotImplementedError


@dataclass
class ArmContext:
    """What a strategy may look at: trigger priorities, its own PRODUCTION model's stop-sign
    output entropy for pool samples, the labels of the samples it already picked, the seed."""

    seed: int
    priorities: dict[str, int] = field(default_factory=dict)
    entropy: Callable[[str, list[PoolSample]], list[float]] | None = None  # (arm, samples) -> entropies
    positive: Callable[[str], bool] | None = None  # a picked (so paid-for) sample's label shows the case


class TriggeredArm(Arm):
    """The data engine: what the operator's triggers uploaded. The budget goes to the triggers whose
    uploads it has found worth labelling: each trigger's yield is estimated from the labels this arm
    already paid for (its picks that showed the case; Laplace's rule, so an unseen trigger starts at
    1/2), and picks go to the best estimate first, `explore` of them round-robin (least measured
    first) so every trigger keeps being measured. Earliest uploads first within a trigger; ties by priority."""

    def __init__(self, explore: float = 0.2) -> None:
        super().__init__("triggered", "triggered", "the operator's triggers (detector, map-vision, uncertainty, flicker), budget by measured yield")
        self.explore = explore  # share of the budget spread over the triggers regardless of yield (`longtail demo --explore`)
        self.picked_from: dict[str, list[str]] = {}  # trigger -> the sample ids picked from it

    def choose(self, pool, n, context):
        by_trigger: dict[str, list[PoolSample]] = {}
        for s in sorted(pool, key=lambda s: (s.captured_ns, s.sample_id)):
            by_trigger.setdefault(s.trigger_id, []).append(s)

        def estimate(t: str) -> float:
            own = self.picked_from.get(t, [])
            k = sum(context.positive(sid) for sid in own) if context.positive else 0
            return (k + 1) / (len(own) + 2)

        order = sorted(by_trigger, key=lambda t: (-estimate(t), -context.priorities.get(t, 0), t))
        measured = {t: len(self.picked_from.get(t, ())) for t in by_trigger}
        out: list[str] = []
        # exploration: round-robin for a share of the budget, the least measured trigger first
        share = int(round(n * self.explore))
        while len(out) < share and any(by_trigger.values()):
            for t in sorted(by_trigger, key=lambda t: (measured[t], -context.priorities.get(t, 0), t)):
                if by_trigger[t] and len(out) < share:
                    out.append(by_trigger[t].pop(0).sample_id)
        for t in order:  # exploitation: the best estimated yield first
            while by_trigger[t] and len(out) < n:
                out.append(by_trigger[t].pop(0).sample_id)
        trigger_of = {s.sample_id: s.trigger_id for s in pool}
        for sid in out:
            self.picked_from.setdefault(trigger_of[sid], []).append(sid)
        return out


class RandomArm(Arm):
    """Content-blind: a seeded random draw from the periodic sampling trigger's uploads."""

    def __init__(self) -> None:
        super().__init__("random", "random", "random fleet frames (a periodic, content-blind trigger)")

    def choose(self, pool, n, context):
        ids = sorted(s.sample_id for s in pool)
        random.Random(f"{context.seed}:{len(self.picked)}").shuffle(ids)
        return ids[:n]


class UncertaintyArm(Arm):
    """Plain entropy sampling: of the same random fleet frames, those its own PRODUCTION model's
    stop-sign output is least sure about."""

    def __init__(self) -> None:
        super().__init__("uncertainty", "random", "the random pool's frames its own PRODUCTION is least sure about (entropy)")

    def choose(self, pool, n, context):
        if not pool or n <= 0:
            return []
        scores = context.entropy(self.name, pool) if context.entropy else [0.0] * len(pool)
        order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
        return [pool[i].sample_id for i in order[:n]]


class SeedOnlyArm(Arm):
    """The ablation: the seed set and nothing from the fleet."""

    def __init__(self) -> None:
        super().__init__("seed-only", "", "the seed set alone (no fleet data)")

    def choose(self, pool, n, context):
        return []


def default_arms(explore: float = 0.2) -> list[Arm]:
    return [TriggeredArm(explore), RandomArm(), UncertaintyArm(), SeedOnlyArm()]


def budget_schedule(budget: int, growth: float, iteration: int) -> int:
    """Fleet labels every arm may add in `iteration` (1-based): `budget`, then growing by `growth`
    per iteration (1.0 = constant), so that the baselines reach ten times the triggered arm's
    labels in a few training runs; the same for every arm in a given iteration."""
    if iteration < 1:
        raise ValueError("iteration starts at 1")
    return max(1, int(round(budget * growth ** (iteration - 1))))
