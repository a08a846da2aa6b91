"""The demo's report: `report.md` (leading with the answer), PNG plots, `results.json` (everything
recorded) and `summary.json` (the keys other tools read). Every figure is computed from the
`DemoResult`, which `results.json` holds whole."""

from __future__ import annotations

import json
import math
from pathlib import Path

from longtail.stats import censored_median, mean_spread, rate

from demo.accounting import DemoResult, Experiment

ARM_STYLE = {"triggered": ("C0", "-o"), "random": ("C1", "--s"), "uncertainty": ("C2", ":^"), "seed-only": ("C3", "D")}


def pct(x: float) -> str:
    """Whole percent, one decimal below 10% (base rates are small)."""
    if x is None or x != x:
        return "n/a"
    return f"{x * 100:.1f}%" if 0 < x < 0.1 else f"{x * 100:.0f}%"


def interval(r) -> str:
    return f"{pct(r.value)} [{pct(r.low)}, {pct(r.high)}] ({r.k}/{r.n})"


def _num(x):
    """JSON-safe: nan and inf become null."""
    return None if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))) else x


# ---------------------------------------------------------------------- summary.json
def experiment_summary(exp: Experiment) -> dict:
    arms = {}
    for name, ledger in exp.arms.items():
        arms[name] = {
            "labels_to_target": ledger.labels_to_target,
            "label_cap": ledger.label_cap if ledger.label_cap is not None else ledger.labels_spent,
            "labels_spent": ledger.labels_spent,
            "stopped": ledger.stopped,
            "final_candidate_pass": {s: _num(v.rate.value) for s, v in ledger.final("candidate").items()},
            "final_production_pass": {s: _num(v.rate.value) for s, v in ledger.final("production").items()},
            "curve": [
                {
                    "labels": c.labels,
                    "pass": _num(c.candidate[exp.target_suite].rate.value) if exp.target_suite in c.candidate else None,
                    "ci95": [_num(c.candidate[exp.target_suite].rate.low), _num(c.candidate[exp.target_suite].rate.high)] if exp.target_suite in c.candidate else None,
                    "accepted": c.accepted,
                    "regressed": ledger.regressed(c),
                }
                for c in ledger.candidates
            ],
        }
    triggers = []
    for t in exp.triggers:
        lift, low, high = exp.lift(t)
        y = t.yield_rate
        triggers.append(
            {
                "id": t.trigger_id,
                "seed": exp.seed,
                "source": t.source,
                "fires": t.fires,
                "uploads": t.uploads,
                "labelled_uploads": t.labelled,
                "true_positive": t.true_positive,
                "yield": _num(y.value),
                "yield_ci95": [_num(y.low), _num(y.high)],
                "yield_vs_base_rate": _num(lift),
                "yield_vs_base_rate_ci95": [_num(low), _num(high)],
            }
        )
    base = exp.base_rate
    return {
        "seed": exp.seed,
        "arms": arms,
        "triggers": triggers,
        "cases": case_summary(exp),
        "base_rate": _num(base.value),
        "base_rate_ci95": [_num(base.low), _num(base.high)],
        "base_rate_n": base.n,
        "frame_base_rate": _num(exp.frame_base_rate),
        "labels_total": exp.labels_total,
        "wall_seconds": round(exp.wall_seconds, 1),
    }


def case_summary(exp: Experiment) -> dict:
    """Per long-tail case: its suite, labels to target and final candidate per arm, its base rate
    and each trigger's yield of it against that base rate."""
    out = {}
    for case, suite in exp.cases.items():
        base = exp.case_base_rate(case)
        triggers = {}
        for t in exp.triggers:
            lift, low, high = exp.case_lift(t, case)
            y = t.case_yield(case)
            triggers[t.trigger_id] = {"true_positive": t.by_case.get(case, 0), "labelled_uploads": t.labelled, "yield": _num(y.value), "yield_vs_base_rate": _num(lift), "yield_vs_base_rate_ci95": [_num(low), _num(high)]}
        out[case] = {
            "suite": suite,
            "cases": exp.suites.get(suite, 0),
            "base_rate": _num(base.value),
            "base_rate_ci95": [_num(base.low), _num(base.high)],
            "labels_to_target": {name: ledger.labels_to(suite) for name, ledger in exp.arms.items()},
            "final_candidate_pass": {name: _num(ledger.final("candidate")[suite].rate.value) if suite in ledger.final("candidate") else None for name, ledger in exp.arms.items()},
            "triggers": triggers,
        }
    return out


def case_trigger_lift(experiments: list[Experiment], case: str) -> float | None:
    """The case's own detector trigger: its labelled uploads showing the case over the case's base
    rate, pooled over seeds (None without such a trigger or without a base rate)."""
    mine = [t for e in experiments for t in e.triggers if t.case == case]
    pool = [t for e in experiments for t in e.random_pool]
    k, n = sum(t.by_case.get(case, 0) for t in mine), sum(t.labelled for t in mine)
    bk, bn = sum(t.by_case.get(case, 0) for t in pool), sum(t.labelled for t in pool)
    if not mine or not n or not bk or not bn:
        return None
    return (k / n) / (bk / bn)


def median_if_all_reached(values: list[int | None]) -> int | None:
    """The (upper) median labels to target over seeds; None when a seed did not reach it."""
    reached = [v for v in values if v is not None]
    return int(sorted(reached)[len(reached) // 2]) if values and len(reached) == len(values) else None


def summary(result: DemoResult) -> dict:
    """The first seed's figures at the top level when there is one seed; with several, labels to
    target is the median over seeds that reached it (null if any did not) and pass rates are means;
    `per_seed` holds each seed's own summary."""
    per_seed = [experiment_summary(e) for e in result.experiments]
    first = result.experiments[0] if result.experiments else None
    out = {
        "target": float(first.target) if first else float(result.config.get("target", 0.90)),
        "target_suite": first.target_suite if first else "",
        "target_suites": first.target_suites if first else [],
        "tolerance": next((a.tolerance for a in first.arms.values()), 0.0) if first else float(result.config.get("tolerance", 0.02)),
        "suites": {s: {"cases": n} for s, n in (first.suites.items() if first else ())},
        "wall_seconds": round(result.wall_seconds, 1),
        "seeds": [e.seed for e in result.experiments],
        "triggers": [t for s in per_seed for t in s["triggers"]],
        "per_seed": per_seed,
    }
    pooled = rate(sum(e.base_rate.k for e in result.experiments), sum(e.base_rate.n for e in result.experiments))
    out["base_rate"], out["base_rate_ci95"] = _num(pooled.value), [_num(pooled.low), _num(pooled.high)]
    arms = {}
    for name in per_seed[0]["arms"] if per_seed else {}:
        rows = [s["arms"][name] for s in per_seed]
        reached = [r["labels_to_target"] for r in rows]
        mean_of = lambda key, rows=rows: {suite: _num(mean_spread([r[key].get(suite) for r in rows if r[key].get(suite) is not None])["mean"]) for suite in rows[0][key]}  # noqa: E731
        arms[name] = {
            "labels_to_target": median_if_all_reached(reached),
            "labels_to_target_by_seed": reached,
            "seeds_reached": sum(x is not None for x in reached),
            "label_cap": max(r["label_cap"] for r in rows),
            "final_candidate_pass": mean_of("final_candidate_pass"),
            "final_production_pass": mean_of("final_production_pass"),
        }
    out["arms"] = arms
    cases = {}
    for case, entry in per_seed[0]["cases"].items() if per_seed else ():
        by_seed = {name: [s["cases"][case]["labels_to_target"][name] for s in per_seed] for name in entry["labels_to_target"]}
        by_arm = {n: median_if_all_reached(v) for n, v in by_seed.items()}
        finals = [s["cases"][case]["final_candidate_pass"].get("triggered") for s in per_seed]
        cases[case] = {
            "suite": entry["suite"],
            "cases": entry["cases"],
            # The shape: the data engine's (triggered arm's) figures for the case.
            "labels_to_target": by_arm.get("triggered"),
            "final_pass": _num(mean_spread([f for f in finals if f is not None])["mean"]),
            "trigger_yield_vs_base_rate": _num(case_trigger_lift(result.experiments, case)),
            "labels_to_target_by_arm": by_arm,
            "labels_to_target_by_seed": by_seed,
            "base_rate": _num(rate(sum(round((s["cases"][case]["base_rate"] or 0) * s["base_rate_n"]) for s in per_seed), sum(s["base_rate_n"] for s in per_seed)).value),
        }
    out["cases"] = cases
    out["new_task"] = new_task_summary(first.new_task) if first is not None and first.new_task else None
    return out


NEW_TASK_KEYS = ("name", "declared_at_iteration", "certified_at_iteration", "labels", "minutes", "other_suites_regressed")


def new_task_summary(new_task: dict) -> dict:
    out = {k: new_task.get(k) for k in NEW_TASK_KEYS}
    out["minutes"] = round(float(out["minutes"] or 0.0), 2)
    return out


def new_task_lines(exp: Experiment) -> list[str]:
    t = exp.new_task
    assert t is not None  # asked for an experiment with a new task
    pass_rate = f"{t['pass_rate']:.0%} of {t['suite_cases']} held-out cases" if t.get("pass_rate") is not None else f"n/a ({t['suite_cases']} cases so far)"
    certified = (
        f"**certified at iteration {t['certified_at_iteration']}**, {t['certified_at_iteration'] - t['declared_at_iteration']} iterations, {t['labels']} labels and {t['minutes']:.1f} minutes after its declaration"
        if t["certified_at_iteration"] is not None
        else f"**not certified** by the end of the run ({t['labels']} labels, {t['minutes']:.1f} minutes after its declaration; "
        f"its workflow is at `{t['step']}`" + (f": {t['blocked_reason'] or t['waiting_for']}" if t["blocked_reason"] or t["waiting_for"] else "") + ")"
    )
    lines = [
        f"### A new task declared at iteration {t['declared_at_iteration']}: {t['name']} (seed {exp.seed})",
        "",
        f"Declared once (its tasks.yaml entry, applied while the run went on); the product's task workflow did the rest. {certified}. "
        f"Its suite: {pass_rate}; model v{t['model_version'] or '—'} of its own line (from the same bootstrap v1 as the arms, so they stay comparable). "
        f"Another suite regressed on an accepted version meanwhile: {'yes' if t['other_suites_regressed'] else 'no'} (the gate runs every suite).",
        "",
        "| time | step | what |",
        "|---|---|---|",
    ]
    start = t["history"][0]["at"] if t["history"] else 0.0
    lines += [f"| +{(e['at'] - start) / 60:.1f} min | {e['step']} | {e['what'].replace('|', '/')} |" for e in t["history"]]
    return lines + [""]


# ---------------------------------------------------------------------- plots
def _curves(ax, exp: Experiment, suite: str) -> None:
    """One case's suite: each arm's candidates by labels spent, from the baseline."""
    base = exp.baseline.get(suite)
    for name, ledger in exp.arms.items():
        color, style = ARM_STYLE.get(name, ("C4", "-"))
        pts = [(c.labels, c.candidate[suite].rate) for c in ledger.candidates if suite in c.candidate]
        if base is not None:
            pts = [(0, base.rate)] + pts
        if not pts:
            continue
        xs = [max(x, 1) for x, _ in pts]
        needed = ledger.labels_to(suite)
        ax.plot(xs, [r.value * 100 for _, r in pts], style, color=color, label=f"{name} ({needed if needed is not None else '> ' + str(ledger.label_cap or ledger.labels_spent)} labels to target)")
        ax.fill_between(xs, [r.low * 100 for _, r in pts], [r.high * 100 for _, r in pts], color=color, alpha=0.12)
        gamed = [(max(c.labels, 1), c.candidate[suite].rate.value * 100) for c in ledger.candidates if suite in c.candidate and ledger.on_target(c, suite) and ledger.regressed(c, suite)]
        if gamed:  # on target, but another suite fell: does not count
            ax.plot(*zip(*gamed), "x", color=color, ms=9, mew=2)
    ax.axhline(exp.target * 100, color="grey", lw=1, ls="--")
    ax.text(1.05, exp.target * 100 + 0.8, f"target {pct(exp.target)}", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("labels spent (seed set included; 1 = the baseline)")
    ax.set_ylim(-2, 102)
    ax.set_title(suite, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, which="both")


def plots(result: DemoResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for exp in result.experiments:
        tag = "" if len(result.experiments) == 1 else f"-seed{exp.seed}"
        suites = exp.target_suites or [exp.target_suite]
        fig, axes = plt.subplots(1, len(suites), figsize=(8 if len(suites) == 1 else 5.2 * len(suites), 4.8), squeeze=False, sharey=True)
        for ax, suite in zip(axes[0], suites):
            _curves(ax, exp, suite)
        axes[0][0].set_ylabel("candidate pass rate on the case's suite, %")
        fig.suptitle(f"Labels to target, seed {exp.seed} (held-out suites of {exp.suites.get(suites[0], 0)} cases; bands: 95% Wilson; x: on target but another suite fell)", fontsize=9)
        fig.tight_layout()
        files.append(out / f"labels_to_target{tag}.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=(8, 3.8))
        trig = [t for t in exp.triggers if t.labelled]
        base_rate = exp.base_rate
        for i, t in enumerate(trig):
            r = t.yield_rate
            ax.errorbar([i], [r.value * 100], yerr=[[max(0.0, r.value - r.low) * 100], [max(0.0, r.high - r.value) * 100]], fmt="o", capsize=4, color="C1" if t.source == "random" else "C0")
            ax.text(i + 0.08, r.value * 100, f"{t.true_positive}/{t.labelled}", fontsize=8, va="center")
        if base_rate.n:
            ax.axhspan(base_rate.low * 100, base_rate.high * 100, color="C1", alpha=0.15)
            ax.axhline(base_rate.value * 100, color="C1", lw=1, ls="--", label=f"base rate (random uploads) {pct(base_rate.value)}")
        ax.set_xticks(range(len(trig)))
        ax.set_xticklabels([t.trigger_id.replace(f"-{exp.suffix}", "") for t in trig], fontsize=8)
        ax.set_ylabel("uploads showing the case, %")
        ax.set_title("Yield per trigger (95% Wilson) against the base rate", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        files.append(out / f"yield{tag}.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    return files


# ---------------------------------------------------------------------- report.md
def answer_lines(result: DemoResult, exp: Experiment) -> list[str]:
    trig = exp.arms.get("triggered")
    t_needed = trig.labels_to_target if trig else None
    suites = exp.target_suites
    lines = [f"| arm | labels to {pct(exp.target)} on {' and '.join(suites)} | label cap | stopped | final candidate on {', '.join(suites)} [95% CI] | vs triggered |", "|---|---|---|---|---|---|"]
    for name, ledger in exp.arms.items():
        finals = ledger.final("candidate")
        needed = ledger.labels_to_target
        if name == "triggered" or t_needed is None:
            ratio = "—"
        elif needed is None:
            ratio = f"> {ledger.labels_spent / t_needed:.1f}× (did not reach it)"
        else:
            ratio = f"{needed / t_needed:.1f}×"
        lines.append(
            f"| {name} | {needed if needed is not None else '> ' + str(ledger.labels_spent)} | {ledger.label_cap if ledger.label_cap is not None else '—'} | "
            f"{ledger.stopped} | {'; '.join(interval(finals[s].rate) if s in finals else 'n/a' for s in suites)} | {ratio} |"
        )
    return lines


def case_lines(exp: Experiment) -> list[str]:
    """Several cases at once: per case, labels to target per arm, its base rate and its triggers'
    yield of it; then the cases' suites ranked by how far the triggered arm is from the target
    (what needs data next) and how the triggered arm split its labels between the triggers."""
    lines = [
        f"### Cases (seed {exp.seed})",
        "",
        "Each case has its own suite, seed set, detector and detector trigger; they share one fleet and one label budget. Labels to target "
        "on one case's suite counts the candidate that first reached it with no other suite more than the tolerance below the baseline.",
        "",
        "| case | suite | baseline | " + " | ".join(f"{a}: labels to target, final candidate" for a in exp.arms) + " | base rate [95% CI] | its detector trigger: yield × base rate |",
        "|---|---|---|" + "---|" * len(exp.arms) + "---|---|",
    ]
    for case, suite in exp.cases.items():
        base = exp.baseline.get(suite)
        cells = []
        for ledger in exp.arms.values():
            needed, final = ledger.labels_to(suite), ledger.final("candidate").get(suite)
            cells.append(f"{needed if needed is not None else '> ' + str(ledger.labels_spent)}, {pct(final.rate.value) if final else 'n/a'}")
        own = [t for t in exp.triggers if t.case == case]
        lift = ", ".join(f"{t.by_case.get(case, 0)}/{t.labelled} = " + (f"{exp.case_lift(t, case)[0]:.1f}×" if t.labelled and exp.case_base_rate(case).k else "n/a") for t in own) or "no detector published"
        lines.append(f"| {case} | {suite} | {interval(base.rate) if base else 'n/a'} | " + " | ".join(cells) + f" | {interval(exp.case_base_rate(case))} | {lift} |")
    trig = exp.arms.get("triggered")
    if trig is not None and trig.candidates:
        finals = trig.final("candidate")
        ranked = sorted(exp.cases.values(), key=lambda s: finals[s].rate.value if s in finals else -1.0)
        lines += [
            "",
            "Which case needs data next (the triggered arm's final candidate, lowest first; below the target is failing): "
            + ", ".join(f"{s} {pct(finals[s].rate.value) if s in finals else 'n/a'}" + ("" if s in finals and finals[s].rate.value >= exp.target else " (failing)") for s in ranked)
            + ".",
        ]
    if exp.picked_by_trigger:
        total = sum(exp.picked_by_trigger.values())
        lines += [
            "",
            "The triggered arm's fleet labels by trigger (its budget split, by measured yield of the cases it has not reached yet): "
            + ", ".join(f"{t} {n} ({n / total:.0%})" for t, n in sorted(exp.picked_by_trigger.items(), key=lambda kv: -kv[1]))
            + ".",
        ]
    return lines + [""]


def markdown(result: DemoResult) -> str:
    lines = [f"# longtail demo report (run `{result.run}`)", ""]
    s = summary(result)
    if len(result.experiments) > 1:
        lines += [
            "## Over seeds",
            "",
            f"Seeds {s['seeds']}; each is a whole experiment (its own world, fleet, seed set, detector and triggers; the same suites).",
            "",
            "A mean of only the seeds that reached the target would flatter an arm that often does not, so the table gives how many "
            'seeds reached it and the median (censored at the cap: an arm that missed in most seeds has a median of "> cap").',
            "",
            "| arm | labels to target per seed | reached | median | final candidate pass on the case's suite, mean ± sd |",
            "|---|---|---|---|---|",
        ]
        for name in s["arms"]:
            by_seed = s["arms"][name]["labels_to_target_by_seed"]
            finals = mean_spread([p["arms"][name]["final_candidate_pass"].get(s["target_suite"]) for p in s["per_seed"] if p["arms"][name]["final_candidate_pass"].get(s["target_suite"]) is not None])
            lines.append(
                f"| {name} | {', '.join(str(x) if x is not None else '> cap' for x in by_seed)} | {sum(x is not None for x in by_seed)}/{len(by_seed)} | {censored_median(by_seed)} | {pct(finals['mean'])} ± {finals['sd'] * 100:.1f} pts |"
            )
        lines.append("")
    for exp in result.experiments:
        tag = "" if len(result.experiments) == 1 else f"-seed{exp.seed}"
        base = exp.baseline.get(exp.target_suite)
        lines += [
            f"## The answer (seed {exp.seed})",
            "",
            f"Every arm starts from the same baseline model ({interval(base.rate) if base else 'n/a'} on {exp.target_suite}), trains on the same "
            f"seed set ({exp.seed_labels} labels) plus the fleet uploads it picks, gets the same label budget per iteration, the same recipe "
            f"(fine-tune its PRODUCTION on all its labels, rehearsing common cases) and is measured on the same held-out suites; it iterates until "
            f"its candidate reaches {pct(exp.target)} on {exp.target_suite} with no other suite more than "
            f"{float(result.config.get('tolerance', 0.02)) * 100:g} points below the baseline, or it has spent its label cap "
            f"({result.config.get('cap_factor', '10')}× what the triggered arm needed).",
            "",
        ]
        lines += answer_lines(result, exp)
        lines += ["", f"![labels to target](labels_to_target{tag}.png)", ""]
        if len(exp.cases) > 1:
            lines += case_lines(exp)
        br = exp.base_rate
        if exp.new_task:
            lines += new_task_lines(exp)
        lines += [
            f"### Yield per trigger (seed {exp.seed})",
            "",
            f"Base rate: {interval(br)} of the random pool's labelled uploads show the case; {pct(exp.frame_base_rate)} of all {sum(f['frames'] for f in exp.fleet):,} frames the cars rendered (correlated frames: no interval).",
            "",
            "| trigger | expression | backtest fires / frames | fired | uploaded | labelled | showing the case | yield [95% CI] | × base rate [95% CI] |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in exp.triggers:
            lift, low, high = exp.lift(t)
            lines.append(
                f"| {t.trigger_id} | `{t.expression}` | {t.backtest_fires} / {t.backtest_frames} | {t.fires} | {t.uploads} | {t.labelled} | "
                f"{t.true_positive} | {interval(t.yield_rate) if t.labelled else 'n/a'} | " + (f"{lift:.1f}× [{low:.1f}, {high:.1f}]" if lift == lift and not math.isinf(lift) else "n/a") + " |"
            )
        lines += ["", f"![yield](yield{tag}.png)", ""]
        lines += [
            f"### Every candidate and the gate (seed {exp.seed})",
            "",
            "Candidate pass rates are what the arm's data did; PRODUCTION moves only when the gate accepts (no case of any suite may regress). "
            "An accepted candidate of the triggered arm first runs in shadow mode on the fleet, then becomes PRODUCTION.",
            "",
            "| iteration | arm | labels | of them fleet (showing the case) | run | gate | " + " | ".join(f"{s} (candidate)" for s in exp.suites) + " | shadow mode |",
            "|---|---|---|---|---|---|" + "---|" * len(exp.suites) + "---|",
        ]
        for ledger in exp.arms.values():
            for c in ledger.candidates:
                gate = "accepted" if c.accepted else f"{c.status.lower()}: " + "; ".join(c.reasons)[:140]
                if ledger.on_target(c) and ledger.regressed(c):
                    gate = f"**on target, not counted** ({', '.join(ledger.regressed(c))} fell); " + gate
                sh = c.shadow
                shadow = f"{sh['frames_disagreeing']}/{sh['frames_compared']} frames disagree on {sh['cars']} cars" if sh else ""
                lines.append(
                    f"| {c.iteration} | {c.arm} | {c.labels} | {c.fleet_labels} ({c.positives}) | `{c.run_id}` v{c.version} | {gate} | "
                    + " | ".join(interval(c.candidate[s].rate) if s in c.candidate else "n/a" for s in exp.suites)
                    + f" | {shadow} |"
                )
        lines += ["", "PRODUCTION at the end, per arm:", "", "| arm | " + " | ".join(exp.suites) + " |", "|---|" + "---|" * len(exp.suites)]
        lines.append("| baseline (v1) | " + " | ".join(interval(exp.baseline[s].rate) if s in exp.baseline else "n/a" for s in exp.suites) + " |")
        for name, ledger in exp.arms.items():
            prod = ledger.final("production")
            lines.append(f"| {name} | " + " | ".join(interval(prod[s].rate) if s in prod else "n/a" for s in exp.suites) + " |")
        if exp.detectors:
            lines += ["", "Trigger detector versions (beamed to every car, which scores every frame with it):", "", "| iteration | version | dataset | samples | status | gate |", "|---|---|---|---|---|---|"]
            lines += [f"| {d['iteration']} | v{d['version']} | {d['dataset']} | {d['samples']} | {d['status']} | {d['gate']} |" for d in exp.detectors]
        lines += ["", "Drives:", "", "| drive | production model (frames) | frames | fires | uploads | upload errors | frames showing the case | shadow frames / disagreements | wall s |", "|---|---|---|---|---|---|---|---|---|"]
        for f in exp.fleet:
            models = ", ".join(f"{m} ({n})" for m, n in sorted(f.get("models", {}).items()))
            shadow = f"{f['shadow_frames']} / {f['shadow_disagreements']}" if f.get("shadow_frames") else ""
            lines.append(f"| {f['label']} | {models} | {f['frames']:,} | {sum(f['fires'].values())} | {f['uploads']} | {f['upload_errors']} | {f['case_frames']} | {shadow} | {f['wall_s']} |")
        lines += ["", f"Labels: every arm's count includes the seed set ({exp.seed_labels}); the simulated labellers gave {exp.labels_total} labels in all (suite cases and uploads no arm picked included).", ""]
        if exp.notes:
            lines += ["Notes:", ""] + [f"- {n}" for n in exp.notes] + [""]
    lines += ["## Suites", "", "| suite | cases | baseline [95% CI] |", "|---|---|---|"]
    first = result.experiments[0] if result.experiments else None
    if first is not None:
        for suite, n in first.suites.items():
            b = first.baseline.get(suite)
            lines.append(f"| {suite} | {n} | {interval(b.rate) if b else 'n/a'} |")
    lines += [
        "",
        "## What these figures do not show",
        "",
        "- The world, its long tail and the labels are simulated: the ratios say how the strategies compare on this simulator, not on real roads.",
        "- Labels to target is measured at the iterations' label counts (the budget grows per iteration), so it is an upper bound within one step of the schedule.",
        "- A baseline that stops at its cap without reaching the target bounds the label ratio from below only.",
        "- Intervals are per figure (95% Wilson); across many figures some miss by chance. Suite cases are independent renders; uploads of one trigger can share a sign.",
        "- The base rate is measured on the random pool's uploads (content-blind, spread over the drive); the frame share is given without an interval because consecutive frames are correlated.",
        f"- Wall time {result.wall_seconds / 60:.1f} min on this machine; configuration: " + ", ".join(f"{k}={v}" for k, v in sorted(result.config.items()) if k not in ("out",)),
        "",
    ]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(lines)


def write(result: DemoResult, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots(result, out)
    (out / "results.json").write_text(result.to_json())
    (out / "summary.json").write_text(json.dumps(summary(result), indent=2, sort_keys=True))
    path = out / "report.md"
    path.write_text(markdown(result))
    return path


def table(result: DemoResult):
    """The final rich table: labels to target per arm and seed."""
    from rich.table import Table

    t = Table("seed", "arm", "labels to target", "label cap", "final candidate on the case's suite", title=f"longtail demo {result.run}")
    for exp in result.experiments:
        for name, ledger in exp.arms.items():
            final = ledger.final("candidate").get(exp.target_suite)
            t.add_row(
                str(exp.seed),
                name,
                str(ledger.labels_to_target) if ledger.labels_to_target is not None else f"> {ledger.labels_spent}",
                str(ledger.label_cap if ledger.label_cap is not None else "—"),
                interval(final.rate) if final else "n/a",
            )
    return t
