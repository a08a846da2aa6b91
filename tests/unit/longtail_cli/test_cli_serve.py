"""`longtail serve <service>` runs the service in a fresh interpreter (`python -m <service>`), so
settings that must precede grpc's import — the gateway's GRPC_EXPERIMENTS — take effect."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from longtail_cli import app as cli


def test_serve_replaces_the_cli_with_the_service_module(monkeypatch):
    calls = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: calls.append((path, argv)))
    result = CliRunner().invoke(cli.app, ["serve", "trigger-evaluator"])
    assert result.exit_code == 0, result.output
    assert calls == [(sys.executable, [sys.executable, "-m", "trigger_evaluator"])]


def test_an_unknown_service_is_refused_with_the_choices():
    result = CliRunner().invoke(cli.app, ["serve", "gatewy"])
    assert result.exit_code != 0 and "gateway, trigger-evaluator" in result.output


def test_the_gateway_sets_its_grpc_experiment_before_grpc_is_imported():
    # An import hook records GRPC_EXPERIMENTS at the moment grpc itself is first imported.
    probe = (
        "import os, sys\n"
        "os.environ.pop('GRPC_EXPERIMENTS', None)\n"
        "seen = []\n"
        "class Watch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'grpc' and not seen:\n"
        "            seen.append(os.environ.get('GRPC_EXPERIMENTS'))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "import gateway.__main__\n"
        "print(seen)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fuse_filters']"
