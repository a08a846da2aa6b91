"""`longtail studio ...`: Label Studio as the labelling front end (docs/label-studio.md)."""

from __future__ import annotations

import asyncio
import os
import sys

import typer
from rich.console import Console

app = typer.Typer(help="Label Studio as the label store's labelling front end: the bridge, projects, accounts.", no_args_is_help=True)
console = Console()


@app.command("bridge")
def bridge() -> None:
    """Run the bridge in the foreground (LABEL_STUDIO_URL/TOKEN, LABEL_STORE_ADDR, STUDIO_BRIDGE_*)."""
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "studio_bridge"])


@app.command("regenerate")
def regenerate(task: str) -> None:
    """Write a task's labelling config into its project again (after it was edited in Label Studio,
    or refused), so the bridge pushes to it again."""
    from longtail import config
    from studio_bridge.__main__ import build
    from studio_bridge.settings import BridgeSettings

    async def run():
        bridge = build(config.load(BridgeSettings), 0)
        try:
            return await bridge.regenerate(task)
        finally:
            await bridge.studio.close()
            bridge.store.close()

    try:
        project = asyncio.run(run())
    except KeyError as exc:
        console.print(f"[bold red]error:[/] {exc.args[0]}")
        raise typer.Exit(1) from None
    if project.refused:
        console.print(f"[bold red]not regenerated:[/] {project.refused}")
        raise typer.Exit(1)
    console.print(f"project {project.id} ({task}): labelling config regenerated from the task's schema")


@app.command("user")
def user(email: str, password: str = typer.Option(..., prompt=True, hide_input=True, help="At least 8 characters.")) -> None:
    """Add a labeller's account to the local Label Studio (`longtail infra up --label-studio`)."""
    from longtail_dev.infra.label_studio import LabelStudio

    if len(password) < 8:
        raise typer.BadParameter("at least 8 characters", param_hint="--password")
    LabelStudio().create_user(email, password)
    console.print(f"{email} can log in at {LabelStudio().url}")
