"""`longtail fleet tls-env`: the exports that run services and the CLI over TLS with the development CA,
and what a service makes of them."""

from __future__ import annotations

import shlex

from typer.testing import CliRunner

from longtail import config
from longtail.tls import server_credentials

from longtail_cli import app as cli


def _exports(output: str) -> dict[str, str]:
    env = {}
    for line in output.splitlines():
        (assignment,) = shlex.split(line.removeprefix("export "))
        key, _, value = assignment.partition("=")
        env[key] = value
    return env


def test_tls_env_gives_a_service_and_the_cli_their_certificates(tmp_path, monkeypatch):
    result = CliRunner().invoke(cli.app, ["fleet", "tls-env", "--dir", str(tmp_path / "pki dir"), "--client-auth", "require"])
    assert result.exit_code == 0, result.output
    env = _exports(result.output)
    assert env["LONGTAIL_PKI_DIR"] == str(tmp_path / "pki dir") and env["GRPC_TLS_CLIENT_AUTH"] == "require"
    assert env["LONGTAIL_TLS_CA"] == env["GRPC_TLS_CA"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = config.load(config.ServiceSettings)
    assert server_credentials(settings) is not None  # a service started with these exports listens with TLS


def test_tls_env_refuses_an_unknown_client_auth(tmp_path):
    result = CliRunner().invoke(cli.app, ["fleet", "tls-env", "--dir", str(tmp_path), "--client-auth", "sometimes"])
    assert result.exit_code == 2 and "none, optional or require" in " ".join(result.output.split())
