"""What the experiment records: candidates per arm (labels spent, pass counts, the gate), triggers
(fires, uploads, true positives), drives, and the labels-to-target bookkeeping. Pure data and
arithmetic: the report and the summary are computed from these, nothing else."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from longtail.stats import Rate, rate, ratio_interval


@dataclass
class SuiteScore:
    """k of n cases of one suite passed."""

    passed: int
    cases: int

    @property
    def rate(self) -> Rate:
        return rate(self.passed, self.cases)

    @classmethod
    def of(cls, pass_rate: float, total: int) -> SuiteScore:
        return cls(int(round(pass_rate * total)), int(total))


@dataclass
class Candidate:
    """One training run of one arm: what it trained on and what the gate said."""

    iteration: int
    arm: str
    labels: int  # labels in its training data, the seed set included
    fleet_labels: int  # of those, fleet uploads the arm picked
    dataset: str
    run_id: str = ""
    status: str = ""  # SUCCEEDED, REFUSED, FAILED
    accepted: bool = False
    version: int = 0
    reasons: list[str] = field(default_factory=list)
    candidate: dict[str, SuiteScore] = field(default_factory=dict)  # the candidate's suite results
    production: dict[str, SuiteScore] = field(default_factory=dict)  # the arm's PRODUCTION after this iteration
    datasets_used: list[str] = field(default_factory=list)
    shadow: dict = field(default_factory=dict)  # fleet evidence before promotion (triggered arm)
    positives: int = 0  # picked fleet labels showing the case (simulator ground truth)


@dataclass
class ArmLedger:
    """Labels-to-target bookkeeping of one arm: its candidates in order, the target on the cases'
    suites (`target_suites`, one per long-tail case worked), and the label cap (known once the
    triggered arm has finished: `cap_factor` x what it needed).

    A candidate reaches the target on a case's suite when it passes `target` of it *and* no other
    suite fell more than `tolerance` below the baseline's pass rate: a model that fires on every
    red shape passes the occluded suite too, and must not count (the gate refuses it as well). The
    arm reaches the target when one candidate is on target on every case's suite and no other
    suite fell."""

    arm: str
    target_suites: tuple[str, ...] | str
    target: float
    tolerance: float = 0.02
    baseline: dict[str, SuiteScore] = field(default_factory=dict)  # every arm's v1 on every suite
    candidates: list[Candidate] = field(default_factory=list)
    label_cap: int | None = None
    stopped: str = ""  # why it stopped iterating

    def __post_init__(self) -> None:
        self.target_suites = (self.target_suites,) if isinstance(self.target_suites, str) else tuple(self.target_suites)
        if not self.target_suites:
            raise ValueError(f"{self.arm}: no target suite")

    def record(self, candidate: Candidate) -> None:
        if self.candidates and candidate.labels < self.candidates[-1].labels:
            raise ValueError(f"{self.arm}: labels went down ({self.candidates[-1].labels} -> {candidate.labels})")
        self.candidates.append(candidate)

    def _targets(self, suite: str | None) -> tuple[str, ...]:
        if suite is not None:
            return (suite,)
        assert not isinstance(self.target_suites, str)  # a tuple since __post_init__
        return self.target_suites

    def regressed(self, c: Candidate, suite: str | None = None) -> list[str]:
        """The suites other than the target one(s) on which `c` fell more than `tolerance` below
        the baseline (`suite`: one case's suite; None: every case's)."""
        targets = self._targets(suite)
        return sorted(
            name
            for name, score in c.candidate.items()
            if name not in targets and name in self.baseline and score.cases and self.baseline[name].cases and score.passed / score.cases < self.baseline[name].passed / self.baseline[name].cases - self.tolerance - 1e-12
        )

    def on_target(self, c: Candidate, suite: str | None = None) -> bool:
        scores = [c.candidate.get(name) for name in self._targets(suite)]
        return all(s is not None and s.cases > 0 and s.passed / s.cases >= self.target - 1e-12 for s in scores)

    def reached(self, c: Candidate, suite: str | None = None) -> bool:
        return self.on_target(c, suite) and not self.regressed(c, suite)

    def labels_to(self, suite: str | None = None) -> int | None:
        """Labels of the first candidate that reached the target on `suite` (None: on every case's
        suite at once); None if none did."""
        return next((c.labels for c in self.candidates if self.reached(c, suite)), None)

    @property
    def labels_to_target(self) -> int | None:
        return self.labels_to(None)

    def short_of_target(self) -> list[str]:
        """The cases' suites the arm has not reached yet (what it should spend labels on next)."""
        return [suite for suite in self.target_suites if self.labels_to(suite) is None]

    @property
    def labels_spent(self) -> int:
        return self.candidates[-1].labels if self.candidates else 0

    def done(self) -> bool:
        return self.labels_to_target is not None or (self.label_cap is not None and self.labels_spent >= self.label_cap)

    def final(self, which: str = "candidate") -> dict[str, SuiteScore]:
        return getattr(self.candidates[-1], which) if self.candidates else {}


@dataclass
class TriggerStats:
    trigger_id: str
    source: str  # "triggered" or "random"
    expression: str
    site: str = "edge"  # edge: fires counted by the cars; fleet: by the trigger evaluator (GetYield)
    priority: int = 0
    case: str = ""  # the long-tail case a detector trigger is for ("": shared)
    backtest_fires: int = 0
    backtest_frames: int = 0
    fires: int = 0
    uploads: int = 0  # distinct samples registered with this trigger's provenance
    labelled: int = 0  # of those, labelled
    true_positive: int = 0  # labelled uploads whose firing frame shows a case (ground truth)
    by_case: dict[str, int] = field(default_factory=dict)  # case -> labelled uploads showing it

    def case_yield(self, case: str) -> Rate:
        return rate(self.by_case.get(case, 0), self.labelled)

    @property
    def yield_rate(self) -> Rate:
        return rate(self.true_positive, self.labelled)


@dataclass
class Experiment:
    """One seed's experiment."""

    seed: int
    suffix: str
    target: float
    cases: dict[str, str]  # long-tail case -> its suite, in the scenario's order
    suites: dict[str, int] = field(default_factory=dict)  # suite -> cases
    baseline: dict[str, SuiteScore] = field(default_factory=dict)
    seed_labels: int = 0
    arms: dict[str, ArmLedger] = field(default_factory=dict)
    triggers: list[TriggerStats] = field(default_factory=list)
    fleet: list[dict] = field(default_factory=list)
    detectors: list[dict] = field(default_factory=list)
    labels_total: int = 0  # every label the simulated labellers gave (suite cases and unpicked uploads included)
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    picked_by_trigger: dict[str, int] = field(default_factory=dict)  # the triggered arm's fleet labels per trigger
    new_task: dict | None = None  # demo.new_task.NewTaskResult of a task declared in the middle of the run

    @property
    def target_suite(self) -> str:
        """The first case's suite (the one the plots and the single-case tables lead with)."""
        return next(iter(self.cases.values()))

    @property
    def target_suites(self) -> list[str]:
        return list(self.cases.values())

    @property
    def base_rate(self) -> Rate:
        """Share of the content-blind (random) uploads that show a case: what a label spent
        without a trigger buys."""
        pool = self.random_pool
        return rate(sum(t.true_positive for t in pool), sum(t.labelled for t in pool))

    def case_base_rate(self, case: str) -> Rate:
        pool = self.random_pool
        return rate(sum(t.by_case.get(case, 0) for t in pool), sum(t.labelled for t in pool))

    @property
    def random_pool(self) -> list[TriggerStats]:
        """The content-blind triggers (the baselines' source)."""
        return [t for t in self.triggers if t.source == "random"]

    def case_lift(self, t: TriggerStats, case: str) -> tuple[float, float, float]:
        """A trigger's yield of one case over that case's base rate, with its 95% interval."""
        base = self.case_base_rate(case)
        return ratio_interval(t.by_case.get(case, 0), t.labelled, base.k, base.n)

    @property
    def frame_base_rate(self) -> float:
        """Share of every frame the cars rendered that shows a case (frames are correlated: no interval)."""
        frames = sum(f["frames"] for f in self.fleet)
        return sum(f["case_frames"] for f in self.fleet) / frames if frames else float("nan")

    def lift(self, t: TriggerStats) -> tuple[float, float, float]:
        """A trigger's yield over the base rate, with its 95% interval."""
        base = self.base_rate
        return ratio_interval(t.true_positive, t.labelled, base.k, base.n)


@dataclass
class DemoResult:
    run: str
    config: dict
    experiments: list[Experiment] = field(default_factory=list)
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        d = asdict(self)
        d["config"] = {k: str(v) for k, v in d["config"].items()}
        for exp, raw in zip(self.experiments, d["experiments"]):
            raw["base_rate"] = exp.base_rate.to_dict()
            raw["frame_base_rate"] = exp.frame_base_rate
            for ledger in raw["arms"].values():
                arm = exp.arms[ledger["arm"]]
                ledger["labels_to_target"] = arm.labels_to_target
            for t, traw in zip(exp.triggers, raw["triggers"]):
                traw["yield"] = t.yield_rate.to_dict()
                traw["yield_vs_base_rate"] = list(exp.lift(t))
        return json.dumps(d, indent=2, sort_keys=True)
