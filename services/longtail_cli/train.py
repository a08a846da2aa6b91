"""`longtail train` and `longtail models list|get|promote|rollback|compare` (TRAINER_ADDR; writes
take LONGTAIL_OPERATOR_TOKEN or mint one from OPERATOR_TOKEN_SECRET)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from longtail_cli import client

app = typer.Typer(no_args_is_help=True)
models_app = typer.Typer(help="Model registry: versions, gate reports, promotion, rollback, comparison.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console(stderr=True)
out = Console()


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


def _stub():
    from longtail.models.v1 import trainer_pb2_grpc

    return client.stub(trainer_pb2_grpc.TrainerServiceStub, "TRAINER_ADDR", "`longtail serve trainer`")


def _auth() -> list[tuple[str, str]]:
    return client.operator_metadata()


def _call(fn, request, metadata=None):
    return client.call(fn, request, metadata=metadata)


def _ref(text: str):
    from longtail.common.v1 import common_pb2 as C

    name, _, version = text.partition("@")
    if version and not version.isdigit():
        _fail(f"{text!r}: expected NAME or NAME@VERSION")
    return C.ModelRef(name=name, version=int(version or 0))


def print_gate(report) -> None:
    table = Table("suite", "version", "before", "after", "cases", "regressed", "by chance", "waived", "fixed", title="regression gate")
    for s in report.suites:
        drop = s.after_pass_rate + 1e-12 < s.before_pass_rate
        after = f"[red]{s.after_pass_rate:.1%}[/]" if drop else f"{s.after_pass_rate:.1%}"
        table.add_row(s.suite, str(s.suite_version), f"{s.before_pass_rate:.1%}", after, str(s.total), str(len(s.regressed_case_ids)), str(len(s.unstable_case_ids)), str(len(s.waived_case_ids)), str(len(s.fixed_case_ids)))
    out.print(table)
    verdict = "[green]ACCEPTED[/]" if report.accepted else "[bold red]REFUSED[/]"
    out.print(f"{verdict} {report.candidate.name}@{report.candidate.version} vs baseline {report.baseline.name + '@' + str(report.baseline.version) if report.baseline.name else '(none)'}")
    for r in report.reasons:
        out.print(f"  - {r}")
    for w in report.waivers_applied:
        out.print(f"  waiver: {w.suite} {w.case_id or '(all cases)'}: {w.reason} ({w.approved_by or 'unknown'})")


@app.command("train")
def train(
    model: str = typer.Option("", help="Output model name (default: the trainer's, multitask)."),
    dataset: list[str] = typer.Option([], "--dataset", "-d", help="NAME or NAME@VERSION (repeatable); none = the simulator's generator."),
    task: list[str] = typer.Option([], "--task", help="Train only these tasks' labels (repeatable)."),
    epochs: int = typer.Option(0, help="0 = the trainer's default."),
    seed: int = typer.Option(0),
    lr: float = typer.Option(0.0, help="0 = default."),
    promote: bool = typer.Option(False, "--promote", help="Publish an accepted version as PRODUCTION (else CANDIDATE)."),
    from_scratch: bool = typer.Option(False, "--from-scratch", help="Fresh weights instead of the production version's."),
    base: str = typer.Option("", help="Base/baseline version NAME@VERSION (default: current PRODUCTION)."),
    waive: list[str] = typer.Option([], "--waive", help="SUITE[:CASE_ID]=REASON: accept that regression (recorded)."),
    detector: str = typer.Option("", help="Train a trigger detector with this name instead of the multitask model."),
    positive: str = typer.Option("", help="Detector: predicate over a label that makes a sample positive."),
    backend: str = typer.Option("", help="Where the run trains: local, torchrun or kubernetes (default: the trainer's TRAINER_BACKEND; docs/trainer.md, Run backends)."),
    processes: int = typer.Option(0, help="Training processes per node for torchrun/kubernetes (0 = the trainer's TRAINER_PROCESSES)."),
    run_id: str = typer.Option("", help="Idempotency key."),
    wait: bool = typer.Option(True, help="Follow the run with a progress bar."),
) -> None:
    """Start a training run on the trainer and follow it (progress, metrics, the gate's decision)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from longtail.common.v1 import common_pb2 as C
    from longtail.models.v1 import trainer_pb2 as T

    spec = T.RunSpec(model_name=model, epochs=epochs, seed=seed, promote=promote, from_scratch=from_scratch, tasks=task)
    if detector:
        spec.kind, spec.detector_name, spec.positive_predicate = T.RUN_KIND_TRIGGER_DETECTOR, detector, positive
    else:
        spec.kind = T.RUN_KIND_MULTITASK
    for d in dataset:
        name, _, version = d.partition("@")
        spec.datasets.append(C.DatasetRef(name=name, version=int(version or 0)))
    if base:
        spec.base_model.CopyFrom(_ref(base))
    if lr:
        spec.hyperparameters.update({"lr": lr})
    if backend:
        spec.hyperparameters.update({"backend": backend})
    if processes:
        spec.hyperparameters.update({"processes": processes})
    for w in waive:
        target, sep, reason = w.partition("=")
        if not sep or not reason.strip():
            _fail(f"--waive {w!r}: expected SUITE[:CASE_ID]=REASON")
        suite, _, case = target.partition(":")
        spec.waivers.add(suite=suite, case_id=case, reason=reason, approved_by=os.environ.get("USER", ""))
    stub = _stub()
    run = _call(stub.StartRun, T.StartRunRequest(run_id=run_id, spec=spec), metadata=_auth()).run
    console.print(f"run [bold]{run.run_id}[/] queued")
    if not wait:
        print(run.run_id)
        return
    terminal = (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(), console=console) as bar:
        t = bar.add_task("queued", total=1.0)
        while run.status not in terminal:
            time.sleep(0.5)
            run = _call(stub.GetRun, T.GetRunRequest(run_id=run.run_id)).run
            phase = T.RunPhase.Name(run.phase).removeprefix("RUN_PHASE_").lower()
            loss = run.metrics.get("train/loss")
            bar.update(t, completed=run.progress, description=f"{phase} epoch {run.epoch}" + (f" loss {loss:.3f}" if loss is not None else ""))
    _print_run(run)
    if run.status != T.RUN_STATUS_SUCCEEDED:
        raise typer.Exit(1)


def _print_run(run) -> None:
    from longtail.models.v1 import trainer_pb2 as T

    out.print(f"run {run.run_id}: [bold]{T.RunStatus.Name(run.status).removeprefix('RUN_STATUS_')}[/] model {run.model.name}@{run.model.version} data {', '.join(run.datasets_used)}")
    if run.error:
        out.print(f"[red]{run.error}[/]")
    metrics = Table("metric", "value", title="metrics")
    for k in sorted(run.metrics):
        metrics.add_row(k, f"{run.metrics[k]:.4f}")
    out.print(metrics)
    if run.gate_report.candidate.name:
        print_gate(run.gate_report)


@app.command("runs")
def runs(run_id: str = typer.Argument("", help="Show one run in detail.")) -> None:
    """List training runs (newest first), or show one."""
    from longtail.models.v1 import trainer_pb2 as T

    stub = _stub()
    if run_id:
        _print_run(_call(stub.GetRun, T.GetRunRequest(run_id=run_id)).run)
        return
    table = Table("run", "kind", "status", "phase", "progress", "model", "triggered by", "created")
    for r in _call(stub.ListRuns, T.ListRunsRequest(page_size=50)).runs:
        table.add_row(
            r.run_id,
            T.RunKind.Name(r.spec.kind).removeprefix("RUN_KIND_"),
            T.RunStatus.Name(r.status).removeprefix("RUN_STATUS_"),
            T.RunPhase.Name(r.phase).removeprefix("RUN_PHASE_"),
            f"{r.progress:.0%}",
            f"{r.model.name}@{r.model.version}",
            r.triggered_by,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at.seconds)),
        )
    out.print(table)


@models_app.command("list")
def models_list(name: str = typer.Argument("", help="Model name (default: all).")) -> None:
    """Versions with their state (PRODUCTION, CANDIDATE, REFUSED, RETIRED), suites and parent."""
    from longtail.models.v1 import trainer_pb2 as T

    table = Table("model", "state", "kind", "parent", "tasks", "suites (pass rate)", "gate", "run")
    for m in _call(_stub().ListModels, T.ListModelsRequest(name=name, page_size=200)).models:
        state = T.ModelState.Name(m.state).removeprefix("MODEL_STATE_")
        color = {"PRODUCTION": "green", "REFUSED": "red", "RETIRED": "dim"}.get(state, "yellow")
        suites = ", ".join(f"{s.suite} {s.pass_rate:.0%}" for s in m.suite_results if s.total)
        table.add_row(
            f"{m.model.name}@{m.model.version}",
            f"[{color}]{state}[/]",
            T.RunKind.Name(m.kind).removeprefix("RUN_KIND_"),
            str(m.parent.version or "-"),
            ",".join(m.tasks),
            suites,
            "accepted" if m.gate_report.accepted else ("[red]" + "; ".join(m.gate_report.reasons)[:80] + "[/]" if m.gate_report.reasons else "-"),
            m.run_id,
        )
    out.print(table)


@models_app.command("get")
def models_get(ref: str = typer.Argument(..., help="NAME@VERSION (NAME = production).")) -> None:
    """One version: manifest keys, metrics, gate report."""
    from google.protobuf import json_format

    from longtail.models.v1 import trainer_pb2 as T

    m = _call(_stub().GetModel, T.GetModelRequest(model=_ref(ref))).model
    print(json.dumps(json_format.MessageToDict(m, preserving_proto_field_name=True), indent=1))


@models_app.command("promote")
def models_promote(
    ref: str = typer.Argument(..., help="NAME@VERSION"),
    candidate: bool = typer.Option(False, "--candidate", help="Shadow mode only."),
    fraction: float = typer.Option(0.0, "--fraction", min=0.0, max=1.0, help="With --candidate: share of the fleet that runs it (0 = all)."),
    reason: str = typer.Option("", help="Why (logged)."),
) -> None:
    """Make a published version PRODUCTION (or beam it as a shadow CANDIDATE). Refused versions cannot be promoted."""
    from longtail.common.v1 import common_pb2 as C
    from longtail.models.v1 import trainer_pb2 as T

    role = C.MODEL_ROLE_CANDIDATE if candidate else C.MODEL_ROLE_PRODUCTION
    m = _call(_stub().PromoteModel, T.PromoteModelRequest(model=_ref(ref), role=role, reason=reason, shadow_fraction=fraction), metadata=_auth()).model
    out.print(f"{m.model.name}@{m.model.version} is now {T.ModelState.Name(m.state).removeprefix('MODEL_STATE_')}")


@models_app.command("import")
def models_import(
    name: str = typer.Argument(..., help="Model line (a Triton folder name)."),
    weights: Path = typer.Argument(..., exists=True, dir_okay=False, help="TorchScript archive (longtail.model.torchscript.save)."),
    candidate: bool = typer.Option(False, "--candidate", help="Publish as a shadow CANDIDATE instead of PRODUCTION."),
    reason: str = typer.Option("", help="Recorded with the version."),
) -> None:
    """Register weights trained elsewhere (e.g. a bootstrap model) as the first version of a model line."""
    from longtail.common.v1 import common_pb2 as C
    from longtail.models.v1 import trainer_pb2 as T

    role = C.MODEL_ROLE_CANDIDATE if candidate else C.MODEL_ROLE_PRODUCTION
    r = _call(_stub().ImportModel, T.ImportModelRequest(model_name=name, weights=weights.read_bytes(), role=role, reason=reason), metadata=_auth())
    out.print(f"{r.model.model.name}@{r.model.model.version} is {T.ModelState.Name(r.model.state).removeprefix('MODEL_STATE_')}" + (" (already imported)" if r.already_existed else ""))


@models_app.command("rollback")
def models_rollback(name: str = typer.Argument(...), to: int = typer.Option(0, help="Version (0 = the previous PRODUCTION)."), reason: str = typer.Option("", help="Why (logged).")) -> None:
    """Re-publish an earlier version as PRODUCTION."""
    from longtail.models.v1 import trainer_pb2 as T

    r = _call(_stub().RollbackModel, T.RollbackModelRequest(model_name=name, to_version=to, reason=reason), metadata=_auth())
    out.print(f"{name}: PRODUCTION {r.rolled_back_from.version} -> {r.model.model.version}")


@models_app.command("compare")
def models_compare(
    candidate: str = typer.Argument(..., help="NAME@VERSION"),
    production: str = typer.Option("", help="NAME@VERSION (default: current PRODUCTION)."),
    dataset: str = typer.Option("", help="NAME[@VERSION]: compare on its samples."),
    split: str = typer.Option("", help="train, val or test."),
    suite: list[str] = typer.Option([], "--suite", help="Compare on these suites' cases (default with no dataset: all)."),
    fleet: bool = typer.Option(False, "--fleet", help="The fleet's shadow-mode reports instead of an offline run."),
    since: str = typer.Option("", help="With --fleet: how far back, e.g. 30m, 2h, 1d (default: everything retained)."),
) -> None:
    """Where two versions disagree, frame by frame: offline (a dataset and/or suite cases) or, with
    --fleet, what the cars running the candidate in shadow mode reported."""
    from longtail.common.v1 import common_pb2 as C
    from longtail.models.v1 import trainer_pb2 as T

    cand = _ref(candidate)
    prod = _ref(production) if production else C.ModelRef(name=cand.name)
    req = T.CompareModelsRequest(production=prod, candidate=cand, split=split, suites=suite)
    if dataset:
        n, _, v = dataset.partition("@")
        req.dataset.CopyFrom(C.DatasetRef(name=n, version=int(v or 0)))
    if fleet or since:
        req.time_range.SetInParent()
        if since:
            req.time_range.since.FromNanoseconds(int((time.time() - client.duration_seconds(since)) * 1e9))
    r = _call(_stub().CompareModels, req)
    cars = f", {r.distinct_vehicles} cars" if req.HasField("time_range") else ""
    out.print(f"{r.source}: {r.frames_disagreeing}/{r.frames_compared} frames disagree ({r.disagreement_rate:.1%}){cars}")
    table = Table("difference", "frames")
    for k, v in sorted(r.by_kind.items()):
        table.add_row(k.removeprefix("SHADOW_DIFFERENCE_KIND_"), str(v))
    for k, v in sorted(r.by_task.items()):
        table.add_row(f"task {k}", str(v))
    out.print(table)
    for sid in r.sample_frame_ids:
        out.print(f"  {sid}")
