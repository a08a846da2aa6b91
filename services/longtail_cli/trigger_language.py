"""`longtail triggers ...`: check trigger expressions from the command line.

Mounted by the main CLI as a sub-app (app.add_typer(triggers_app, name="triggers")).
"""

from __future__ import annotations

import sys

import typer

from longtail.triggerlang.catalogue import BUILTINS, MAX_STATE_ITEMS
from longtail.triggerlang.errors import TriggerSyntaxError
from longtail.triggerlang.runtime import compile_trigger

app = typer.Typer(help="Trigger language: validate and explain trigger expressions.", no_args_is_help=True)


def _read(expr: str) -> str:
    """`-` reads the expression from stdin (handy for multi-line triggers in files)."""
    return sys.stdin.read() if expr == "-" else expr


@app.command("validate")
def validate_command(expr: str = typer.Argument(..., help="Trigger expression, or '-' to read it from stdin.")) -> None:
    """Parse and type-check EXPR: print 'ok: <normalized form>' (exit 0) or the error with its position (exit 1)."""
    source = _read(expr)
    try:
        trigger = compile_trigger(source)
    except TriggerSyntaxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {trigger.normalized}")


@app.command("explain")
def explain_command(expr: str = typer.Argument(..., help="Trigger expression, or '-' to read it from stdin.")) -> None:
    """Show how EXPR is understood: normalized form, calls with defaults, detectors, per-car state bound."""
    source = _read(expr)
    try:
        trigger = compile_trigger(source)
    except TriggerSyntaxError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"normalized: {trigger.normalized}")
    if trigger.constant is not None:
        typer.echo(f"constant:   always {'true' if trigger.constant else 'false'}")
    typer.echo("calls:")
    for call in trigger.calls or ("(none)",):
        name = call.split("(", 1)[0]
        summary = BUILTINS[name].summary if name in BUILTINS else ""
        typer.echo(f"  {call}" + (f"  -- {summary}" if summary else ""))
    typer.echo(f"detectors:  {', '.join(sorted(trigger.required_detectors)) or '(none)'}")
    typer.echo(f"state:      at most {trigger.state_items} values per car (limit {MAX_STATE_ITEMS})")
    if trigger.vec is not None:
        typer.echo("fleet-side: column by column, with the other triggers (docs/triggers.md)")
    else:
        slow = [b.name for b in BUILTINS.values() if not b.columnar]
        typer.echo(f"fleet-side: frame by frame ({', '.join(slow[:-1])} and {slow[-1]} are; ~20x slower per frame)")
