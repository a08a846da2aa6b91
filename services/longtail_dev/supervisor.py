"""Run services as separate processes (the same entry points the charts deploy), wait until their
gRPC health check says SERVING, and stop them with SIGTERM (graceful drain). Used by the demo,
the integration tests and the benchmarks.

HTTP processes (the Label Studio bridge) are ready when GET /healthz answers 200."""

from __future__ import annotations

import abc
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

# The child asks the kernel for SIGTERM when the process that started it dies (Linux
# PR_SET_PDEATHSIG), so a killed test run or demo leaves no service behind to join the next broker's
# consumer groups. Done by the child itself, before it runs the module: a preexec_fn would force a
# plain fork() of a multi-threaded parent (gRPC, Kafka threads), which Python warns is unsafe.
_LAUNCH = (
    "import ctypes, runpy, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)\n"
    "except OSError:\n"
    "    pass  # not Linux: no such guard\n"
    "module = sys.argv.pop(1)\n"
    "runpy.run_module(module, run_name='__main__', alter_sys=True)\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess(abc.ABC):
    """A module of this project run as its own process with its output in a log file: started
    until it is ready (what "ready" means is the subclass's `_readiness`), stopped with SIGTERM."""

    poll_interval = 0.2

    def __init__(self, module: str, env: dict[str, str], log_path: Path | None, log_name: str) -> None:
        self.module = module
        self.env = env
        if log_path is None:
            from longtail_dev.infra.launcher import state_dir

            log_path = state_dir() / "logs" / f"{log_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @abc.abstractmethod
    def _readiness(self) -> contextlib.AbstractContextManager[Callable[[], bool]]:
        """A probe that says whether the process is ready yet (open while `start` waits)."""

    def _on_ready(self) -> None:  # noqa: B027 (an optional hook, not abstract)
        """Hook run once the process is ready."""

    def start(self, timeout: float = 60.0) -> Self:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", _LAUNCH, self.module], env=self.env, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        with self._readiness() as ready:
            while not ready():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    why = self._tail()
                    self.stop(timeout=5)
                    raise RuntimeError(f"{self.module} did not become ready: {why}")
                time.sleep(self.poll_interval)
        self._on_ready()
        return self

    def _tail(self) -> str:
        return f"last lines of {self.log_path}:\n" + "\n".join(self.log_path.read_text(errors="replace").splitlines()[-20:])

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL (a crash, for drills): no drain, no goodbye. `start()` brings it back on the same ports."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def pid(self) -> int:
        """The process id (once started)."""
        assert self.proc is not None, "the process was not started"
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User+system CPU time the process has used (for per-core throughput figures)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


class ServiceProcess(ManagedProcess):
    """A gRPC service, ready once its health check says SERVING; TLS with the development CA's
    certificate unless its env asks for plaintext."""

    def __init__(self, module: str, health_service: str, env: dict[str, str] | None = None, log_path: Path | None = None, grpc_port: int | None = None) -> None:
        self.health_service = health_service
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = free_port()
        full_env = {**os.environ, "GRPC_PORT": str(self.grpc_port), "METRICS_PORT": str(self.metrics_port), "LOG_FORMAT": "json", **(env or {})}
        if not full_env.get("GRPC_TLS_CERT") and full_env.get("GRPC_PLAINTEXT", "").lower() not in ("1", "true", "yes", "on"):
            from longtail_dev.dev_tls import dev_tls

            full_env = {**dev_tls().service_env(), **full_env}  # TLS unless asked otherwise; env's own GRPC_TLS_* win
        super().__init__(module, full_env, log_path, f"{module.split('.')[0]}-{self.grpc_port}")
        self.scrape_target: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @contextlib.contextmanager
    def _readiness(self) -> Iterator[Callable[[], bool]]:
        channel = self.channel()
        stub = health_pb2_grpc.HealthStub(channel)

        def serving() -> bool:
            try:
                return stub.Check(health_pb2.HealthCheckRequest(service=self.health_service), timeout=1).status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                return False

        try:
            yield serving
        finally:
            channel.close()

    def _on_ready(self) -> None:
        """Let a local Prometheus (`longtail infra up prometheus`) scrape this process."""
        from longtail_dev.infra.launcher import register_scrape_target

        job = self.module.split(".")[0].replace("_", "-")
        self.scrape_target = register_scrape_target(job, f"127.0.0.1:{self.metrics_port}", str(self.metrics_port))

    @property
    def plaintext(self) -> bool:
        return not self.env.get("GRPC_TLS_CERT")

    @property
    def tls_dir(self) -> str:
        """The directory of the CA the service verifies clients with (where cars' certificates are
        issued, fleet_sim SimConfig.tls_dir); empty in plaintext."""
        return "" if self.plaintext else str(Path(self.env.get("GRPC_TLS_CA", "")).parent)

    def credentials(self, vehicle: str | None = None, client_cert: bool = True) -> grpc.ChannelCredentials | None:
        """TLS credentials to reach the service (None when it runs in plaintext), verified with its
        GRPC_TLS_CA. The client certificate: the service's own (a service certificate serves both
        ways), a car's with `vehicle` (issued by the same CA on first use), or none (server TLS
        only, e.g. connections that cars share) without `client_cert`."""
        if self.plaintext:
            return None
        from longtail.tls import channel_credentials

        from longtail_dev.dev_tls import DevTls

        ca = self.env.get("GRPC_TLS_CA", "")
        if vehicle is not None:
            return DevTls(Path(self.tls_dir)).credentials(vehicle, vehicle=True)
        if not client_cert:
            return channel_credentials(ca)
        return channel_credentials(ca, self.env["GRPC_TLS_CERT"], self.env.get("GRPC_TLS_KEY", ""))

    def channel(self, vehicle: str | None = None, client_cert: bool = True) -> grpc.Channel:
        """A channel to the service, TLS unless it runs in plaintext (`credentials`)."""
        credentials = self.credentials(vehicle, client_cert)
        return grpc.insecure_channel(self.address) if credentials is None else grpc.secure_channel(self.address, credentials)

    def aio_channel(self, vehicle: str | None = None, client_cert: bool = True) -> grpc.aio.Channel:
        """`channel` for asyncio."""
        credentials = self.credentials(vehicle, client_cert)
        return grpc.aio.insecure_channel(self.address) if credentials is None else grpc.aio.secure_channel(self.address, credentials)

    def metric(self, name: str) -> float:
        """The sum over the series of one metric on the process's /metrics (while it runs)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((name + "{", name + " ")))

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.scrape_target is not None:
            self.scrape_target.unlink(missing_ok=True)
            self.scrape_target = None
        return super().stop(timeout)


class HttpServiceProcess(ManagedProcess):
    """A process whose readiness is an HTTP GET /healthz answering 200 (the Label Studio bridge),
    its port given in `port_variable`."""

    poll_interval = 0.3

    def __init__(self, module: str, port_variable: str, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.port = free_port()
        super().__init__(module, {**os.environ, port_variable: str(self.port), "LOG_FORMAT": "json", **(env or {})}, log_path, f"{module}-{self.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def _readiness(self) -> Iterator[Callable[[], bool]]:
        import urllib.request

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        yield healthy
