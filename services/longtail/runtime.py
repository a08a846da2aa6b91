"""How every service starts, watches its workers and stops.

A service's `serve()` loads its settings, builds its parts and hands them to a `ServiceRuntime`:
the gRPC server (longtail.grpc_server), background workers (Kafka consumer threads and the like)
watched by one liveness watchdog, and clean-up steps. `run()` serves until SIGTERM/SIGINT or a
dead worker, then drains the server and undoes every step in reverse order of registration.

Health comes from real progress (docs/architecture.md): a worker whose `last_progress` is older
than its stall timeout makes the process NOT_SERVING (liveness: Kubernetes restarts it); a worker
that died stops the process, and `run()` raises its error so the exit status says so. Readiness
checks (e.g. "a model version serves") turn only readiness off.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, cast

from longtail.config import ServiceSettings
from longtail.grpc_server import GrpcServer
from longtail.log import get_logger

log = get_logger(__name__)

WATCH_INTERVAL_S = 0.5


class Worker(Protocol):
    """A background worker, e.g. a `kafka.ConsumerThread`. `last_progress` is time.monotonic()
    of its last step; a worker that has not started yet is neither dead nor stalled; `error`, when
    it has one, is what stopped it."""

    @property
    def alive(self) -> bool: ...

    def stop(self) -> None: ...


class _Progressing(Protocol):
    """A worker watched with a stall timeout also has this (e.g. a ConsumerThread; the trainer's
    runner and inference's model control, watched without one, do not)."""

    @property
    def last_progress(self) -> float: ...


class _Startable(Protocol):
    """A worker the runtime starts (`add_worker(..., start=True)`) also has this."""

    def start(self) -> object: ...


@dataclass
class _Watched:
    name: str
    worker: Worker
    stall_timeout_s: float | None  # None: only death counts (a worker without steady work)


def health(workers: list[_Watched], ready_checks: list[Callable[[], bool]], now: float) -> tuple[bool, bool, _Watched | None]:
    """(live, ready, the first dead worker) from the workers' progress and the readiness checks."""
    dead = next((w for w in workers if not w.worker.alive), None)
    live = all(w.stall_timeout_s is None or not getattr(w.worker, "started", True) or now - cast(_Progressing, w.worker).last_progress < w.stall_timeout_s for w in workers)
    return live, live and all(check() for check in ready_checks), dead


class ServiceRuntime:
    def __init__(self, service: str, settings: ServiceSettings, **server_options: Any) -> None:
        self.service = service
        self.server = GrpcServer(service, settings, **server_options)
        self._workers: list[_Watched] = []
        self._ready_checks: list[Callable[[], bool]] = []
        self._cleanup = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task] = []
        self.failed: _Watched | None = None

    def on_shutdown(self, step: Callable[[], Any]) -> None:
        """Run `step` at shutdown, after the steps registered later (a blocking one in a thread)."""

        async def run() -> None:
            try:
                result = step() if inspect.iscoroutinefunction(step) else await asyncio.to_thread(step)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # one failed step must not skip the others
                log.warning("shutdown step failed", step=getattr(step, "__qualname__", repr(step)), error=repr(exc)[:300])

        self._cleanup.push_async_callback(run)

    def add_worker(self, name: str, worker: Worker, stall_timeout_s: float | None = None, start: bool = True) -> Worker:
        """Watch `worker` (and start it unless asked not to); it is stopped at shutdown. With a stall
        timeout it must have `last_progress`; started here, a `start()` without arguments."""
        self._workers.append(_Watched(name, worker, stall_timeout_s))
        if start:
            cast(_Startable, worker).start()
        self.on_shutdown(worker.stop)
        return worker

    def ready_when(self, check: Callable[[], bool]) -> None:
        """A readiness condition: while false, the service names answer NOT_SERVING, the process stays alive."""
        self._ready_checks.append(check)

    def background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """A coroutine that runs while serving (cancelled first at shutdown)."""
        self._tasks.append(asyncio.get_running_loop().create_task(coroutine))

    async def _watch(self, state: tuple[bool, bool]) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            live, ready, dead = health(self._workers, self._ready_checks, time.monotonic())
            if dead is not None:
                log.error("a worker stopped; shutting down", worker=dead.name, error=repr(getattr(dead.worker, "error", None)))
                self.failed = dead
                self.server.request_stop()
                return
            if (live, ready) != state:
                state = (live, ready)
                (log.info if ready else log.warning)("health changed", live=live, ready=ready)
                await self.server.set_health(live=live, ready=ready)

    async def run(self, started: asyncio.Event | None = None) -> None:
        """Serve until a signal or a dead worker, then shut down in reverse order. `started` is
        set once the server listens."""
        try:
            await self.server.start()
            ready = all(check() for check in self._ready_checks)
            if not ready:
                await self.server.set_health(live=True, ready=False)
            self.background(self._watch((True, ready)))
            if started is not None:
                started.set()
            await self.server.serve_until_signal()
        finally:
            for task in reversed(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._cleanup.aclose()
        if self.failed is not None:
            raise RuntimeError(f"{self.service}: worker {self.failed.name} failed") from getattr(self.failed.worker, "error", None)
