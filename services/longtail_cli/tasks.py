"""`longtail tasks ...`: declare tasks while the system runs and follow their workflows.

longtail tasks apply [tasks.yaml] [--only NAME]   # label schema, queue, default suite; a workflow per new task
longtail tasks status [NAME]                      # where each workflow stands, what it waits for
longtail tasks run NAME [--follow]                # advance it (resumable: stop it any time, run it again)
longtail tasks resume NAME [--file tasks.yaml]    # retry the step that blocked it (with a changed declaration)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from longtail import tasks as tasks_mod

from longtail_cli import client
from task_workflow.settings import WorkflowSettings
from task_workflow.state import StateStore, Step, WorkflowState
from task_workflow.workflow import Outcome, Workflow, WorkflowError

app = typer.Typer(help="Tasks declared while the system runs, and the workflow that takes each to certified.", no_args_is_help=True)
out, err = Console(), Console(stderr=True)


def _store() -> StateStore:
    from longtail.config import S3Settings, load
    from longtail.storage import ObjectStore

    return StateStore(ObjectStore(load(S3Settings), service="tasks-cli"))


def _engine():
    from longtail.labels.v1 import labels_pb2_grpc
    from longtail.models.v1 import trainer_pb2_grpc
    from longtail.triggers.v1 import triggers_pb2_grpc

    from task_workflow.engine import GrpcEngine

    return GrpcEngine(
        client.stub(labels_pb2_grpc.LabelStoreServiceStub, "LABEL_STORE_ADDR", "the label-store"),
        client.stub(trainer_pb2_grpc.TrainerServiceStub, "TRAINER_ADDR", "`longtail serve trainer`"),
        client.stub(triggers_pb2_grpc.TriggerCatalogServiceStub, "TRIGGER_EVALUATOR_ADDR", "the trigger-evaluator"),
        client.operator_metadata(),
    )


def _declared(name: str, path: str | None) -> tasks_mod.DeclaredTask:
    try:
        declared = {d.name: d for d in tasks_mod.load(path)}
    except tasks_mod.TaskFileError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if name not in declared:
        err.print(f"[red]error:[/] task {name!r} is not declared in {path or tasks_mod.default_path()}; declared: {', '.join(declared)}")
        raise typer.Exit(2)
    return declared[name]


@app.command("apply")
def apply(
    path: str = typer.Argument(None, help="task declarations (default: ./tasks.yaml, else the repository's)"),
    only: str = typer.Option(None, help="apply only this task"),
    workflow: bool = typer.Option(True, help="start a workflow for every task new to the label store"),
) -> None:
    """Declare the tasks in the label store (schema, queue, default suite); the trainer gives each its head
    the first time a run names it. A task new to the label store gets a workflow (`longtail tasks run`)."""
    try:
        declared = [d for d in tasks_mod.load(path) if only in (None, d.name)]
        for d in declared:
            WorkflowSettings.from_dict(d.workflow)
    except (tasks_mod.TaskFileError, ValueError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if not declared:
        err.print(f"[red]error:[/] no task named {only!r}")
        raise typer.Exit(2)
    engine, store = _engine(), _store()
    table = Table("task", "prototype", "label store", "workflow", title="longtail tasks apply")
    for d in declared:
        outcome = engine.declare(d)
        started = ""
        if workflow and outcome == "created":
            try:
                Workflow(d, engine, store, fresh=True)
                started = "started: `longtail tasks run " + d.name + "`"
            except WorkflowError as exc:
                started = f"not started: {exc}"
        table.add_row(d.name, d.spec.prototype, outcome, started or ("exists" if store.load(d.name) else "-"))
    out.print(table)


def _age(t: float | None) -> str:
    if not t:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def show(state: WorkflowState) -> None:
    steps = [s for s in Step if s not in (Step.BLOCKED,)]
    at = state.current if state.current is not Step.BLOCKED else Step(state.blocked_step)
    line = " -> ".join(f"[bold]{s.value}[/]" if s is at else f"[dim]{s.value}[/]" if s.order > at.order else s.value for s in steps)
    out.print(f"[bold]{state.task}[/] ({state.suite}): {line}")
    rows = [
        ("step", state.step + (f" (at {state.blocked_step})" if state.blocked_step and state.current is Step.BLOCKED else "")),
        ("waiting for", state.waiting_for or "-"),
        ("blocked", state.blocked_reason or "-"),
        ("iteration", str(state.iteration)),
        ("labels", str(state.labels)),
        ("seed set", f"{state.seed_dataset or '-'} (attempt {state.seed_attempt})"),
        ("detector", f"{state.detector} v{state.detector_version}" if state.detector_version else "-"),
        ("trigger", f"{state.trigger_id} ({'active' if state.trigger_active else 'not active'})"),
        ("suite", f"{state.suite}: {state.suite_cases} cases" + (f", {state.passed}/{state.suite_cases} pass ({state.pass_rate:.0%})" if state.pass_rate is not None else "")),
        ("model", f"v{state.model_version}" if state.model_version else "-"),
        # The dashboard repeats its task row over the trainer's `task` label: the row exists once a version with the head was trained.
        ("dashboard", f"longtail / model quality, task={state.task}" if state.model_version else "- (after the first trained version)"),
        ("declared", _age(state.declared_at)),
        ("certified", _age(state.certified_at)),
        ("updated", _age(state.updated_at)),
    ]
    table = Table(show_header=False)
    for k, v in rows:
        table.add_row(k, v)
    out.print(table)
    history = Table("time", "step", "what", title="history (last 10)")
    for e in state.history[-10:]:
        history.add_row(_age(e.at), e.step, e.what)
    out.print(history)


@app.command("status")
def status(name: str = typer.Argument(None, help="a task; all workflows if omitted")) -> None:
    """Where a task's workflow stands: its step, what it waits for, its history."""
    store = _store()
    if name:
        state = store.load(name)
        if state is None:
            err.print(f"[red]error:[/] no workflow for task {name!r} (known: {', '.join(store.tasks()) or 'none'}); `longtail tasks apply` starts one")
            raise typer.Exit(1)
        show(state)
        return
    table = Table("task", "step", "iteration", "labels", "suite", "waiting for / blocked", title="task workflows")
    for task in store.tasks():
        s = store.load(task)
        if s is None:  # removed since store.tasks() listed it
            continue
        table.add_row(s.task, s.step, str(s.iteration), str(s.labels), f"{s.passed}/{s.suite_cases}" if s.pass_rate is not None else f"-/{s.suite_cases}", s.blocked_reason or s.waiting_for or "-")
    out.print(table)


def _workflow(name: str, path: str | None, **kw) -> Workflow:
    """The task's workflow, with the declaration of `path` if given (it replaces the one the workflow
    keeps, e.g. a larger upload budget), else with the declaration it keeps."""
    store = _store()
    if path:
        return Workflow(_declared(name, path), _engine(), store, **kw)
    state = store.load(name)
    if state is None:
        err.print(f"[red]error:[/] no workflow for task {name!r} (known: {', '.join(store.tasks()) or 'none'}); `longtail tasks apply` starts one")
        raise typer.Exit(1)
    try:
        return Workflow.of(state, _engine(), store, **kw)
    except (WorkflowError, tasks_mod.TaskFileError) as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@app.command("run")
def run(
    name: str,
    path: str = typer.Option(None, "--file", help="task declarations to use (default: the declaration the workflow keeps)"),
    follow: bool = typer.Option(False, help="keep going while it waits (poll), until certified or blocked"),
    poll_s: float = typer.Option(10.0, help="seconds between looks while waiting (--follow)"),
) -> None:
    """Advance the task's workflow until it waits, blocks or is certified (safe to stop and run again)."""
    import grpc

    workflow = _workflow(name, path, say=lambda m: err.print(f"[cyan]workflow[/] {m}"))
    while True:
        try:
            outcome = workflow.run()
        except grpc.RpcError as exc:  # a service down or refusing: the step did not happen, the state is where it was
            err.print(f"[red]error:[/] {exc.code().name}: {exc.details()} (the workflow stays at {workflow.state.step}; it goes on from there)")
            if not follow:
                raise typer.Exit(1) from None
            time.sleep(poll_s)
            continue
        if outcome is not Outcome.WAITING or not follow:
            break
        err.print(f"[dim]waiting for {workflow.state.waiting_for}[/]")
        time.sleep(poll_s)
    show(workflow.state)
    raise typer.Exit(1 if outcome is Outcome.BLOCKED else 0)


@app.command("resume")
def resume(name: str, path: str = typer.Option(None, "--file", help="task declarations to resume with, e.g. a larger upload budget (default: the declaration the workflow keeps)")) -> None:
    """Retry the step that blocked the task's workflow (then `longtail tasks run`)."""
    workflow = _workflow(name, path)
    try:
        workflow.resume()
    except WorkflowError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    out.print(f"{name}: back at {workflow.state.step}; `longtail tasks run {name}` goes on")
