"""`longtail triggers ...` commands that talk to the trigger-evaluator's catalog API.

Where: TRIGGER_EVALUATOR_ADDR (host:port). Who: LONGTAIL_OPERATOR_TOKEN, or a token minted from
OPERATOR_TOKEN_SECRET for --operator (default: $USER).
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
import yaml
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

from longtail.triggers.v1 import triggers_pb2 as S
from longtail.triggers.v1 import triggers_pb2_grpc

from longtail_cli import client

console = Console()
err = Console(stderr=True)

SITES = {"edge": S.TRIGGER_SITE_EDGE, "fleet": S.TRIGGER_SITE_FLEET, "both": S.TRIGGER_SITE_BOTH}
MODES = {"rising_edge": S.FIRING_MODE_RISING_EDGE, "every_frame": S.FIRING_MODE_EVERY_FRAME}
STATES = {s.removeprefix("TRIGGER_STATE_").lower(): v for s, v in S.TriggerState.items() if v}


def _stub() -> triggers_pb2_grpc.TriggerCatalogServiceStub:
    return client.stub(triggers_pb2_grpc.TriggerCatalogServiceStub, "TRIGGER_EVALUATOR_ADDR", "the trigger-evaluator")


_auth = client.operator_metadata
_call = client.call
_duration = client.duration_seconds


def _show(triggers) -> None:
    table = Table("id", "v", "state", "site", "task", "budget", "per car/h", "expression", "reason")
    for t in triggers:
        table.add_row(
            t.trigger_id,
            str(t.version),
            S.TriggerState.Name(t.state).removeprefix("TRIGGER_STATE_"),
            S.TriggerSite.Name(t.spec.site).removeprefix("TRIGGER_SITE_"),
            t.spec.task,
            str(t.spec.upload_budget),
            f"{t.spec.max_uploads_per_car_hour:g}",
            t.spec.expression,
            t.state_reason,
        )
    console.print(table)


def create(
    trigger_id: str = typer.Option("", "--id", help="slug; default: from --name"),
    name: str = typer.Option(None, help="human-readable name"),
    expression: str = typer.Option(None, "--expr", help="trigger-language expression"),
    site: str = typer.Option("edge", help="edge | fleet | both"),
    task: str = typer.Option(None, help="task whose label queue receives the uploads"),
    budget: int = typer.Option(100, help="total uploads for this version"),
    per_car_hour: float = typer.Option(2.0, help="per-car uploads per hour"),
    mode: str = typer.Option("rising_edge", help="rising_edge | every_frame"),
    min_interval: str = typer.Option("0s", help="per-car minimum time between fires, e.g. 10s"),
    frames_before: int = typer.Option(0),
    frames_after: int = typer.Option(0),
    priority: int = typer.Option(0),
    file: Path = typer.Option(None, "--file", "-f", help="YAML spec (fields of TriggerSpec); flags override"),
    operator: str = typer.Option(None, help="operator name for a minted token"),
) -> None:
    """Create a trigger (state DRAFT). Validated first: a bad expression shows line and column."""
    spec = S.TriggerSpec()
    if file is not None:
        json_format.ParseDict(yaml.safe_load(file.read_text()) or {}, spec)
    if name:
        spec.name = name
    if expression:
        spec.expression = expression
    if site not in SITES or mode not in MODES:
        err.print(f"[red]error:[/] --site is one of {', '.join(SITES)}; --mode one of {', '.join(MODES)}")
        raise typer.Exit(2)
    if file is None or spec.site == S.TRIGGER_SITE_UNSPECIFIED:
        spec.site = SITES[site]
    if file is None or spec.firing_mode == S.FIRING_MODE_UNSPECIFIED:
        spec.firing_mode = MODES[mode]
    if task:
        spec.task = task
    if file is None or not spec.upload_budget:
        spec.upload_budget = budget
    if file is None or not spec.max_uploads_per_car_hour:
        spec.max_uploads_per_car_hour = per_car_hour
    if file is None:
        spec.min_interval.FromNanoseconds(int(_duration(min_interval) * 1e9))
        spec.capture_window.frames_before, spec.capture_window.frames_after = frames_before, frames_after
        spec.priority = priority
    stub = _stub()
    check = _call(stub.ValidateTrigger, S.ValidateTriggerRequest(spec=spec))
    if not check.ok:
        for e in check.errors:
            where = f"line {e.line}, column {e.column}: " if e.line else ""
            err.print(f"[red]{e.field}[/]: {where}{e.message}" + (f"\n{e.snippet}" if e.snippet else ""))
        raise typer.Exit(1)
    response = _call(stub.CreateTrigger, S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec), _auth(operator))
    _show([response.trigger])
    if response.already_existed:
        console.print("(already existed with this spec)")


def list_(state: list[str] = typer.Option(None, "--state", help=f"filter: {', '.join(STATES)}")) -> None:
    """List triggers (latest version of each)."""
    unknown = [s for s in state or [] if s not in STATES]
    if unknown:
        err.print(f"[red]error:[/] unknown state(s) {unknown}; choose from {', '.join(STATES)}")
        raise typer.Exit(2)
    response = _call(_stub().ListTriggers, S.ListTriggersRequest(states=[STATES[s] for s in state or []], page_size=1000))
    _show(response.triggers)


def get(trigger_id: str, version: int = typer.Option(0)) -> None:
    """Show one trigger as JSON."""
    response = _call(_stub().GetTrigger, S.GetTriggerRequest(trigger_id=trigger_id, version=version))
    console.print_json(json_format.MessageToJson(response.trigger))


def activate(trigger_id: str, operator: str = typer.Option(None)) -> None:
    """DRAFT/PAUSED -> ACTIVE: beamed to cars (edge) and evaluated fleet-side."""
    _show([_call(_stub().ActivateTrigger, S.ActivateTriggerRequest(trigger_id=trigger_id), _auth(operator)).trigger])


def pause(trigger_id: str, reason: str = typer.Option(""), operator: str = typer.Option(None)) -> None:
    """ACTIVE -> PAUSED."""
    _show([_call(_stub().PauseTrigger, S.PauseTriggerRequest(trigger_id=trigger_id, reason=reason), _auth(operator)).trigger])


def retire(trigger_id: str, reason: str = typer.Option(""), operator: str = typer.Option(None)) -> None:
    """Any state -> RETIRED (terminal)."""
    _show([_call(_stub().RetireTrigger, S.RetireTriggerRequest(trigger_id=trigger_id, reason=reason), _auth(operator)).trigger])


def backtest(
    trigger_id: str = typer.Argument(None, help="stored trigger; or use --expr"),
    since: str = typer.Option("1h", help="how far back, e.g. 30m, 1h, 2d"),
    until: str = typer.Option("0s", help="up to how long ago"),
    expression: str = typer.Option(None, "--expr", help="ad-hoc expression instead of a stored trigger"),
    segment: str = typer.Option(None, help="object key of an archived telemetry segment instead of a time range"),
    samples: int = typer.Option(10, help="fired frames to list"),
) -> None:
    """Run a trigger over recorded telemetry: fires, cars, fires per car-hour, uploads/day vs budget."""
    request = S.BacktestTriggerRequest(sample_limit=samples)
    if expression:
        request.spec.expression = expression
        request.spec.upload_budget = 1
    elif trigger_id:
        request.trigger.trigger_id = trigger_id
    else:
        err.print("[red]error:[/] give a trigger id or --expr")
        raise typer.Exit(2)
    if segment:
        request.segment_key = segment
    else:
        now = time.time()
        request.time_range.since.FromNanoseconds(int((now - _duration(since)) * 1e9))
        request.time_range.until.FromNanoseconds(int((now - _duration(until)) * 1e9))
    r = _call(_stub().BacktestTrigger, request, client.operator_metadata())
    table = Table("frames", "fires", "cars fired", "car-hours", "fires/car-hour", "uploads/day", "budget", "days to exhaust", title="backtest")
    table.add_row(f"{r.frames_evaluated:,}", f"{r.fires:,}", f"{r.distinct_vehicles:,}", f"{r.car_hours:.2f}", f"{r.fires_per_car_hour:.1f}", f"{r.expected_uploads_per_day:,.0f}", f"{r.upload_budget:,}", f"{r.days_to_exhaust_budget:.2f}")
    console.print(table)
    for fire in r.sample:
        console.print(f"  {fire.captured_at.ToJsonString()}  {fire.vehicle_id}  {fire.frame_id}")


def yield_(trigger_id: str = typer.Argument(None)) -> None:
    """Yield per trigger version: fired -> uploaded -> labelled -> true positive."""
    r = _call(_stub().GetYield, S.GetYieldRequest(trigger_id=trigger_id or ""))
    table = Table("trigger", "v", "fired", "uploaded", "labelled", "true positive", "yield", "budget left")
    for y in r.yields:
        table.add_row(y.trigger_id, str(y.trigger_version), str(y.fired), str(y.uploaded), str(y.labelled), str(y.true_positive), f"{y.yield_ratio:.2f}", f"{y.budget_remaining}/{y.upload_budget}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("create")(create)
    app.command("list")(list_)
    app.command("get")(get)
    app.command("activate")(activate)
    app.command("pause")(pause)
    app.command("retire")(retire)
    app.command("backtest")(backtest)
    app.command("yield")(yield_)
