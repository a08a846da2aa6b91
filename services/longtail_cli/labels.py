"""`longtail label`, `longtail suites ...` and `longtail datasets ...`: the label store's CLI.

Where: LABEL_STORE_ADDR (host:port). Who (admin writes): LONGTAIL_OPERATOR_TOKEN, or a token
minted from OPERATOR_TOKEN_SECRET for --operator (default: $USER). Images and ground truth: S3_*.
"""

from __future__ import annotations

import getpass
import json
import random
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import typer
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc

from label_store.labellers import GROUND_TRUTH, annotate, firing_image, firing_objects, render_terminal
from longtail_cli import client

console = Console()
err = Console(stderr=True)
suites_app = typer.Typer(help="Unit-test suites: upsert YAML, promote failing samples, evaluate, report.", no_args_is_help=True)
datasets_app = typer.Typer(help="Dataset versions: immutable manifests in the object store.", no_args_is_help=True)


def _stub() -> labels_pb2_grpc.LabelStoreServiceStub:
    return client.stub(labels_pb2_grpc.LabelStoreServiceStub, "LABEL_STORE_ADDR", "the label-store")


_auth = client.operator_metadata
_call = client.call


def _objects():
    from longtail.config import S3Settings, load
    from longtail.storage import ObjectStore

    return ObjectStore(load(S3Settings), service="label-cli")


# ---------------------------------------------------------------------------------------------
# longtail label
# ---------------------------------------------------------------------------------------------


def _fmt_det(d: C.Detection) -> str:
    b = d.box
    attrs = " ".join(f"{k}={v}" for k, v in sorted(d.attributes.items()))
    return f"{d.cls} conf={d.confidence:.2f} box=({b.x_min:.2f} {b.y_min:.2f} {b.x_max:.2f} {b.y_max:.2f}) {attrs}"


def _ask_attributes(task: L.Task, ask: Callable[[str, str], str], defaults: dict[str, str]) -> dict[str, str]:
    out = {}
    for a in task.attributes:
        default = defaults.get(a.name) if defaults.get(a.name) in a.values or not a.values else (a.values[0] if a.values else "")
        while True:
            value = ask(f"  {a.name} ({'/'.join(a.values) or 'text'})", default or "").strip()
            if not a.values or value in a.values:
                out[a.name] = value
                break
            err.print(f"  [red]{value!r} is not one of {', '.join(a.values)}[/]")
    return out


def _ask_box(ask: Callable[[str, str], str]) -> C.BoundingBox:
    while True:
        parts = ask("  box: x_min y_min x_max y_max (fractions of the image)", "").replace(",", " ").split()
        try:
            x0, y0, x1, y1 = (float(p) for p in parts)
        except ValueError:
            err.print("  [red]four numbers, e.g. 0.40 0.30 0.55 0.50[/]")
            continue
        if 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1:
            return C.BoundingBox(x_min=x0, y_min=y0, x_max=x1, y_max=y1)
        err.print("  [red]need 0 <= x_min <= x_max <= 1 and 0 <= y_min <= y_max <= 1[/]")


def ask_annotation(task: L.Task, lease: L.LabelLease, ask: Callable[[str, str], str]) -> C.TaskOutput | None:
    """Ask a person for the label of `lease` (None = skip). `ask(question, default) -> answer`."""
    if task.prototype == C.TASK_PROTOTYPE_DETECTION:
        suggestions = [d for d in (list(lease.pre_label.output.detection.detections) or list(lease.sample.car_detections)) if d.cls in task.classes]
        for i, d in enumerate(suggestions, 1):
            console.print(f"  suggestion [{i}] {_fmt_det(d)}")
        choice = ask("objects: [a]ccept suggestions, [n]othing there, [e]nter boxes, [s]kip", "a" if suggestions else "n").strip().lower()
        out = C.TaskOutput(detection=C.DetectionOutput())
        if choice.startswith("s"):
            return None
        if choice.startswith("a"):
            for i, d in enumerate(suggestions, 1):
                console.print(f"  object [{i}] {d.cls}")
                det = out.detection.detections.add(cls=d.cls, confidence=1.0, box=d.box)
                det.attributes.update(_ask_attributes(task, ask, dict(d.attributes)))
        elif choice.startswith("e"):
            count = int(ask("how many objects?", "1") or "0")
            for _ in range(count):
                cls = task.classes[0] if len(task.classes) == 1 else ask(f"  class ({'/'.join(task.classes)})", task.classes[0])
                det = out.detection.detections.add(cls=cls, confidence=1.0, box=_ask_box(ask))
                det.attributes.update(_ask_attributes(task, ask, {}))
        return out
    if task.prototype == C.TASK_PROTOTYPE_CLASSIFICATION:
        default = lease.pre_label.output.classification.cls or task.classes[0]
        while True:
            cls = ask(f"class ({'/'.join(task.classes)}, or 'skip')", default).strip()
            if cls == "skip":
                return None
            if cls in task.classes:
                break
        attrs = _ask_attributes(task, ask, dict(lease.pre_label.output.classification.attributes))
        return C.TaskOutput(classification=C.ClassificationOutput(cls=cls, attributes=attrs))
    out = C.TaskOutput(landmark=C.LandmarkOutput())
    for name in task.keypoint_names:
        while True:
            answer = ask(f"  {name}: x y (fractions), or - if not visible", "-").strip()
            if answer == "-":
                out.landmark.keypoints.add(name=name, visible=False, confidence=1.0)
                break
            try:
                x, y = (float(v) for v in answer.replace(",", " ").split())
            except ValueError:
                continue
            if 0 <= x <= 1 and 0 <= y <= 1:
                out.landmark.keypoints.add(name=name, x=x, y=y, visible=True, confidence=1.0)
                break
    return out


def _show_image(lease: L.LabelLease, png_path: Path | None, terminal: bool) -> None:
    s = lease.sample
    try:
        data = _objects().get(s.object_key)
    except Exception as exc:
        err.print(f"[yellow]cannot fetch the image ({exc}); label from the detections below[/]")
        return
    png = firing_image(data, s.content_type, s.provenance.frame_id, [])
    if png_path is not None:
        png_path.write_bytes(png)
        console.print(f"image saved to {png_path}")
    if terminal:
        console.print(render_terminal(png))


def _human(task_name: str, labeller: str, lease_s: float, png: Path | None, terminal: bool, review: bool) -> None:
    stub = _stub()
    me = client.token_metadata("reviewer" if review else "labeller", labeller)  # the label store takes the labeller id from the token
    task = _call(stub.GetTask, L.GetTaskRequest(name=task_name)).task
    done = 0
    while True:
        request = L.GetNextTaskRequest(task=task_name, review=review)
        request.lease_duration.FromSeconds(int(lease_s))
        response = _call(stub.GetNextTask, request, me)
        if not response.HasField("lease"):
            console.print(f"queue {task_name!r} is empty; {done} label(s) submitted")
            return
        lease = response.lease
        p = lease.sample.provenance
        console.rule(f"{task_name}: sample {lease.sample.sample_id[:12]}  ({response.queue_depth} more waiting)")
        console.print(f"vehicle {p.vehicle_id}  trigger {p.trigger_id}@{p.trigger_version}  captured {p.captured_at.ToJsonString()}")
        for previous in lease.previous_labels:
            console.print(f"  [magenta]earlier label by {previous.labeller_id}[/]: {json_format.MessageToJson(previous.annotation, indent=None)}")
        _show_image(lease, png, terminal)
        ask = lambda q, d: typer.prompt(q, default=d, show_default=bool(d))  # noqa: E731
        try:
            annotation = ask_annotation(task, lease, ask)
        except (KeyboardInterrupt, typer.Abort):
            _call(stub.ReleaseLease, L.ReleaseLeaseRequest(lease_id=lease.lease_id, reason="labeller quit"), me)
            console.print(f"\nreleased; {done} label(s) submitted")
            return
        if annotation is None:
            _call(stub.ReleaseLease, L.ReleaseLeaseRequest(lease_id=lease.lease_id, reason="skipped"), me)
            continue
        label = L.Label(labeller_kind=L.LABELLER_KIND_HUMAN, annotation=annotation)
        verdict = ask(f"does it show what trigger {p.trigger_id!r} looked for? [y/n/-]", "-").strip().lower()
        if verdict in ("y", "n"):
            label.trigger_true_positive = verdict == "y"
        _call(stub.SubmitLabel, L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key=lease.lease_id, label=label), me)
        done += 1


class SimReport:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.labels = 0
        self.no_truth = 0
        self.refused = 0


def _simulated_worker(index: int, tasks: list[L.Task], error_rate: float, lease_s: float, idle_exit: float, max_labels: int, seed: int, report: SimReport, stop: threading.Event) -> None:
    stub = _stub()
    objects = _objects()
    rng = random.Random(seed * 1000 + index)
    labeller = f"sim-{socket.gethostname()}-{index}"
    me = client.token_metadata("labeller", labeller)
    skipped: set[str] = set()
    held: list[str] = []
    idle_since = time.monotonic()
    try:
        _label_loop(stub, me, objects, rng, labeller, tasks, error_rate, lease_s, idle_exit, max_labels, report, stop, skipped, held, idle_since)
    finally:
        for lease_id in held:
            try:
                stub.ReleaseLease(L.ReleaseLeaseRequest(lease_id=lease_id, reason="simulated labeller: no ground truth"), metadata=me, timeout=30)
            except grpc.RpcError:
                pass  # it expires anyway


def _label_loop(stub, me, objects, rng, labeller, tasks, error_rate, lease_s, idle_exit, max_labels, report, stop, skipped, held, idle_since) -> None:
    while not stop.is_set():
        worked = False
        for task in tasks:
            request = L.GetNextTaskRequest(task=task.name)
            request.lease_duration.FromMilliseconds(int(lease_s * 1000))
            response = stub.GetNextTask(request, metadata=me, timeout=30)
            if not response.HasField("lease"):
                continue
            lease = response.lease
            sid = lease.sample.sample_id
            try:
                truth = None if sid in skipped else json.loads(objects.get(f"{GROUND_TRUTH}{sid}.json"))
            except Exception:
                truth = None
            annotation = annotate(task, truth, error_rate, rng) if truth is not None else None
            if truth is None or annotation is None:
                # Not a simulator snapshot (or a landmark task): leave it to people. The lease is
                # kept until this worker stops, so the queue moves on to the next item instead of
                # handing this one straight back; it is released at the end (or expires).
                if sid not in skipped:
                    with report.lock:
                        report.no_truth += 1
                skipped.add(sid)
                held.append(lease.lease_id)
                worked = True
                continue
            label = L.Label(labeller_kind=L.LABELLER_KIND_SIMULATED, annotation=annotation, trigger_true_positive=any(o.get("cls") in task.classes for o in firing_objects(truth)))
            try:
                stub.SubmitLabel(L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key=lease.lease_id, label=label), metadata=me, timeout=30)
            except grpc.RpcError as exc:  # e.g. the lease expired while we were slow
                with report.lock:
                    report.refused += 1
                err.print(f"[yellow]{labeller}: {exc.code().name}: {exc.details()}[/]")
                continue
            worked = True
            with report.lock:
                report.labels += 1
                if max_labels and report.labels >= max_labels:
                    stop.set()
        if worked:
            idle_since = time.monotonic()
        elif idle_exit and time.monotonic() - idle_since > idle_exit:
            return
        else:
            time.sleep(0.2)


def simulate(task_names: list[str], error_rate: float, workers: int, lease_s: float = 60.0, idle_exit: float = 5.0, max_labels: int = 0, seed: int = 0) -> SimReport:
    stub = _stub()
    all_tasks = _call(stub.ListTasks, L.ListTasksRequest()).tasks
    tasks = [t for t in all_tasks if not task_names or t.name in task_names]
    missing = set(task_names) - {t.name for t in tasks}
    if missing:
        err.print(f"[red]error:[/] unknown task(s) {sorted(missing)}; known: {', '.join(t.name for t in all_tasks)}")
        raise typer.Exit(2)
    report, stop = SimReport(), threading.Event()
    threads = [threading.Thread(target=_simulated_worker, args=(i, tasks, error_rate, lease_s, idle_exit, max_labels, seed, report, stop), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        stop.set()
    return report


def label(
    task: list[str] = typer.Option(None, "--task", help="task to label (repeatable; simulated: default all tasks)"),
    simulated: bool = typer.Option(False, "--simulated", help="simulated labellers reading the simulator's ground truth"),
    error_rate: float = typer.Option(0.02, help="simulated: probability that an object is labelled wrong"),
    workers: int = typer.Option(4, help="simulated: concurrent labellers"),
    idle_exit: float = typer.Option(5.0, help="simulated: stop after this many seconds of empty queues (0 = never)"),
    max_labels: int = typer.Option(0, help="simulated: stop after this many labels (0 = no limit)"),
    seed: int = typer.Option(0, help="simulated: random seed of the mistakes"),
    labeller: str = typer.Option(None, help="human: your labeller id (default: $USER)"),
    lease: float = typer.Option(600.0, help="lease duration, seconds"),
    png: Path = typer.Option(Path("label-current.png"), help="human: where to save the image being labelled"),
    terminal: bool = typer.Option(True, help="human: also draw the image in the terminal"),
    review: bool = typer.Option(False, help="human: work the review queue (labels that disagree)"),
) -> None:
    """Label samples: a person (`--task stop_sign`) or simulated labellers (`--simulated`)."""
    if simulated:
        if not 0.0 <= error_rate <= 1.0 or workers < 1:
            err.print("[red]error:[/] --error-rate must be in [0, 1] and --workers >= 1")
            raise typer.Exit(2)
        started = time.perf_counter()
        report = simulate(list(task or []), error_rate, workers, lease, idle_exit, max_labels, seed)
        wall = time.perf_counter() - started
        table = Table("labels", "labels/s", "no ground truth (released)", "refused", "workers", "error rate", title="simulated labelling")
        table.add_row(str(report.labels), f"{report.labels / wall:.1f}", str(report.no_truth), str(report.refused), str(workers), f"{error_rate:g}")
        console.print(table)
        return
    if not task or len(task) != 1:
        err.print("[red]error:[/] a person labels one task: --task NAME")
        raise typer.Exit(2)
    _human(task[0], labeller or getpass.getuser(), lease, png, terminal, review)


# ---------------------------------------------------------------------------------------------
# longtail suites
# ---------------------------------------------------------------------------------------------


def _model(text: str) -> C.ModelRef:
    name, _, version = text.rpartition(":")
    if not name or not version.isdigit():
        raise typer.BadParameter(f"{text!r}: use NAME:VERSION, e.g. multitask:3")
    return C.ModelRef(name=name, version=int(version))


@suites_app.command("upsert")
def suites_upsert(files: list[Path] = typer.Argument(..., help="suite YAML file(s)"), operator: str = typer.Option(None)) -> None:
    """Create or update suites from YAML; a new version only when cases or predicates changed."""
    stub = _stub()
    for path in files:
        response = _call(stub.UpsertSuite, L.UpsertSuiteRequest(yaml=path.read_text()), _auth(operator))
        s = response.suite
        console.print(f"{path}: {s.name} v{s.version} ({s.cases_count} cases, task {s.task})" + ("" if response.changed else " unchanged"))


@suites_app.command("list")
def suites_list(task: str = typer.Option("", help="only suites of this task")) -> None:
    table = Table("suite", "version", "task", "cases", "description")
    for s in _call(_stub().ListSuites, L.ListSuitesRequest(task=task)).suites:
        table.add_row(s.name, str(s.version), s.task, str(s.cases_count), s.description)
    console.print(table)


@suites_app.command("get")
def suites_get(name: str, version: int = typer.Option(0)) -> None:
    """Print a suite's YAML source (latest version by default)."""
    print(_call(_stub().GetSuite, L.GetSuiteRequest(name=name, version=version)).suite.source_yaml, end="")


@suites_app.command("promote")
def suites_promote(suite: str, sample_id: str, predicate: str = typer.Option(..., "--predicate"), note: str = typer.Option(""), operator: str = typer.Option(None)) -> None:
    """Add a (failing) fleet sample to a suite as a new case."""
    r = _call(_stub().PromoteToSuiteCase, L.PromoteToSuiteCaseRequest(suite=suite, sample_id=sample_id, predicate=predicate, note=note), _auth(operator))
    console.print(f"{r.suite.name} v{r.suite.version}: case {r.case.case_id[:12]}" + (" (already there)" if r.already_existed else " added"))


@suites_app.command("evaluate")
def suites_evaluate(
    model: str = typer.Argument(..., help="NAME:VERSION"), suite: list[str] = typer.Option(None, "--suite"), record: bool = typer.Option(False, help="store the results (operator)"), operator: str = typer.Option(None)
) -> None:
    """Evaluate suites on the predictions inference stored for a model version."""
    request = L.EvaluateSuitesRequest(model=_model(model), suites=suite or [], record=record)
    response = _call(_stub().EvaluateSuites, request, _auth(operator) if record else None)
    table = Table("suite", "v", "passed", "total", "pass rate", title=f"model {model}")
    for r in response.results:
        table.add_row(r.suite, str(r.suite_version), str(r.passed), str(r.total), f"{100 * r.pass_rate:.1f}%")
    console.print(table)


def report_table(results: list[L.SuiteResult]) -> Table:
    """Rows: suites; columns: model versions (oldest to newest); cells: pass rate and counts."""
    models = sorted({(r.model.name, r.model.version) for r in results})
    cells = {(r.suite, r.model.name, r.model.version): r for r in results}
    table = Table("suite", *[f"{n}:{v}" for n, v in models], title="unit-test suites: pass rate per model version")
    for suite in sorted({r.suite for r in results}):
        row = []
        previous = None
        for n, v in models:
            r = cells.get((suite, n, v))
            if r is None:
                row.append("-")
                continue
            style = "green" if r.pass_rate >= 0.999 else ("red" if previous is not None and r.pass_rate < previous else "yellow")
            row.append(f"[{style}]{100 * r.pass_rate:.1f}%[/] ({r.passed}/{r.total})")
            previous = r.pass_rate
        table.add_row(suite, *row)
    return table


def needs_data_next(results: list[L.SuiteResult], target: float = 1.0) -> Table:
    """The suites whose newest recorded evaluation (per model line) is below `target`, lowest
    pass rate first: where the next labels should go."""
    from longtail.stats import rate

    newest: dict[tuple[str, str], L.SuiteResult] = {}
    for r in results:
        key = (r.suite, r.model.name)
        if key not in newest or r.model.version > newest[key].model.version:
            newest[key] = r
    failing = sorted((r for r in newest.values() if r.pass_rate < target - 1e-12), key=lambda r: (r.pass_rate, r.suite, r.model.name))
    table = Table("rank", "suite", "model", "pass rate [95% CI]", "failing cases", title=f"needs data next: below {100 * target:g}%, lowest first")
    for i, r in enumerate(failing, 1):
        w = rate(r.passed, r.total)
        table.add_row(str(i), r.suite, f"{r.model.name}:{r.model.version}", f"{100 * r.pass_rate:.1f}% [{100 * w.low:.0f}, {100 * w.high:.0f}] ({r.passed}/{r.total})", str(r.total - r.passed))
    return table


@suites_app.command("report")
def suites_report(
    suite: str = typer.Option("", help="one suite (default: all)"),
    model: str = typer.Option("", help="model name (default: all)"),
    last: int = typer.Option(0, help="only the last N model versions"),
    target: float = typer.Option(1.0, help="pass rate below which a suite is failing (ranked under 'needs data next')"),
) -> None:
    """Pass rate per suite across model versions (recorded evaluations; red = regression), then the
    failing suites of each model line's newest version ranked lowest first: which needs data next."""
    if not 0.0 < target <= 1.0:
        console.print("[red]--target is a pass rate in (0, 1][/]")
        raise typer.Exit(2)
    response = _call(_stub().GetSuiteReport, L.GetSuiteReportRequest(suite=suite, model_name=model, last_versions=last))
    if not response.results:
        console.print("no recorded evaluations yet (EvaluateSuites with record=true)")
        return
    console.print(report_table(list(response.results)))
    console.print(needs_data_next(list(response.results), target))


# ---------------------------------------------------------------------------------------------
# longtail datasets
# ---------------------------------------------------------------------------------------------


def _datasets_table(items) -> Table:
    table = Table("name", "version", "tasks", "train", "val", "test", "labels", "manifest sha256", "created")
    for d in items:
        table.add_row(d.name, str(d.version), ",".join(d.tasks), str(d.split_counts.train), str(d.split_counts.val), str(d.split_counts.test), str(d.label_count), d.manifest_sha256[:16], d.created_at.ToJsonString())
    return table


@datasets_app.command("create")
def datasets_create(
    name: str,
    task: list[str] = typer.Option(..., "--task"),
    trigger: list[str] = typer.Option(None, "--trigger"),
    val: float = typer.Option(0.1),
    test: float = typer.Option(0.1),
    description: str = typer.Option(""),
    operator: str = typer.Option(None),
) -> None:
    """Freeze the resolved labels of TASKs into a new immutable dataset version."""
    request = L.CreateDatasetRequest(name=name, tasks=task, description=description, split=L.SplitSpec(val_fraction=val, test_fraction=test))
    request.filter.trigger_ids.extend(trigger or [])
    response = _call(_stub().CreateDataset, request, _auth(operator))
    console.print(_datasets_table([response.dataset]))
    if response.already_existed:
        console.print("(nothing changed since this version: no new version)")


@datasets_app.command("list")
def datasets_list(name: str = typer.Argument("", help="all versions of this dataset (default: latest of each)")) -> None:
    console.print(_datasets_table(_call(_stub().ListDatasets, L.ListDatasetsRequest(name=name, page_size=1000)).datasets))


@datasets_app.command("get")
def datasets_get(name: str, version: int = typer.Option(0)) -> None:
    console.print_json(json_format.MessageToJson(_call(_stub().GetDataset, L.GetDatasetRequest(name=name, version=version)).dataset))


@datasets_app.command("rebuild")
def datasets_rebuild(name: str, version: int = typer.Option(0), operator: str = typer.Option(None)) -> None:
    """Regenerate a version's manifest from the database and check it matches bit for bit."""
    r = _call(_stub().RebuildDataset, L.RebuildDatasetRequest(name=name, version=version), _auth(operator))
    ok = "[green]matches[/]" if r.matches else "[red]DIFFERS[/]"
    console.print(f"{r.dataset.name} v{r.dataset.version}: {ok} {r.rebuilt_sha256}" + (" (manifest re-uploaded)" if r.reuploaded else ""))
    if not r.matches:
        raise typer.Exit(1)
