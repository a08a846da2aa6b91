"""The process supervisor's shared start/stop, with an HTTP-ready child (the gRPC one is what every
integration test starts)."""

from __future__ import annotations

import signal
import textwrap
import urllib.request

import pytest

from longtail_dev.supervisor import HttpServiceProcess

HEALTHY = textwrap.dedent(
    """
    import os
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    print("listening", flush=True)
    HTTPServer(("127.0.0.1", int(os.environ["TOY_PORT"])), Handler).serve_forever()
    """
)


def _module(tmp_path, name: str, source: str) -> dict[str, str]:
    (tmp_path / f"{name}.py").write_text(source)
    return {"PYTHONPATH": str(tmp_path)}


def test_an_http_process_is_ready_once_healthz_answers_and_stops_on_sigterm(tmp_path):
    proc = HttpServiceProcess("toy_healthy", "TOY_PORT", env=_module(tmp_path, "toy_healthy", HEALTHY), log_path=tmp_path / "toy.log")
    proc.start(timeout=30)
    try:
        with urllib.request.urlopen(f"{proc.url}/healthz", timeout=5) as response:
            assert response.status == 200
        assert proc.cpu_seconds() >= 0 and proc.rss_bytes() > 0
    finally:
        assert proc.stop(timeout=10) == -signal.SIGTERM
    assert "listening" in (tmp_path / "toy.log").read_text()
    assert proc.stop() == -signal.SIGTERM  # a second stop reports, and does nothing


def test_a_process_that_dies_before_it_is_ready_is_reported_with_its_log(tmp_path):
    env = _module(tmp_path, "toy_dies", "raise SystemExit('no config: set TOY_SETTING')\n")
    proc = HttpServiceProcess("toy_dies", "TOY_PORT", env=env, log_path=tmp_path / "dies.log")
    with pytest.raises(RuntimeError, match=r"toy_dies did not become ready: last lines of .*dies.log:\n.*no config: set TOY_SETTING"):
        proc.start(timeout=30)
    assert proc.proc is not None and proc.proc.returncode == 1


def test_a_process_that_never_gets_ready_is_stopped_at_the_deadline(tmp_path):
    env = _module(tmp_path, "toy_sleeps", "import time\nprint('thinking', flush=True)\ntime.sleep(600)\n")
    proc = HttpServiceProcess("toy_sleeps", "TOY_PORT", env=env, log_path=tmp_path / "sleeps.log")
    with pytest.raises(RuntimeError, match="thinking"):
        proc.start(timeout=2)
    assert proc.proc is not None and proc.proc.poll() is not None  # not left behind
