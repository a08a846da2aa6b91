"""`longtail train`: the options become the run's spec (the backend and processes as hyperparameters)."""

from __future__ import annotations

from typer.testing import CliRunner

from longtail.models.v1 import trainer_pb2 as T

from longtail_cli import app as cli
from longtail_cli import train


def test_backend_and_processes_reach_the_run_spec(monkeypatch):
    sent = []

    class Stub:
        def StartRun(self, request, metadata=None, timeout=None):  # noqa: N802 - the gRPC method's name
            sent.append(request)
            return T.StartRunResponse(run=T.Run(run_id="run-1", status=T.RUN_STATUS_QUEUED))

    monkeypatch.setattr(train, "_stub", Stub)
    monkeypatch.setattr(train, "_auth", lambda: [])
    monkeypatch.setattr(train, "_call", lambda fn, request, metadata=None: fn(request, metadata=metadata))
    result = CliRunner().invoke(cli.app, ["train", "--backend", "torchrun", "--processes", "2", "--epochs", "3", "--no-wait"])
    assert result.exit_code == 0, result.output
    spec = sent[0].spec
    assert dict(spec.hyperparameters) == {"backend": "torchrun", "processes": 2.0} and spec.epochs == 3
