"""The model-control thread of an inference replica: applies model publications one at a time."""

from __future__ import annotations

import queue
import threading

from longtail.log import get_logger

from inference.serving import MODEL_EVENTS, SERVICE, ModelManager

log = get_logger(__name__)


class ModelControl:
    """The control thread: applies publications one at a time, the newest pending one first
    (a version superseded before it was loaded is never loaded)."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self.pending: queue.Queue[int] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="inference-model-control", daemon=True)
        self.history: list[int] = []
        self.error: BaseException | None = None

    def start(self, history: list[int]) -> None:
        self.history = history
        self._thread.start()

    def _run(self) -> None:
        try:
            newest_first = list(dict.fromkeys(reversed(self.history)))
            if newest_first:
                self._retrying(lambda: self.manager.bootstrap(newest_first))
            else:
                log.warning("no PRODUCTION version published yet; waiting for one", model=self.manager.name)
            while not self._stop.is_set():
                try:
                    version = self.pending.get(timeout=0.5)
                except queue.Empty:
                    continue
                while not self.pending.empty():  # only the newest publication matters
                    skipped, version = version, self.pending.get_nowait()
                    MODEL_EVENTS.labels(SERVICE, self.manager.name, "superseded").inc()
                    log.info("publication superseded before it was loaded", model=self.manager.name, version=skipped)
                self._retrying(lambda v=version: self.manager.apply(v))
        except BaseException as exc:
            self.error = exc
            log.exception("model control failed")

    def _retrying(self, step) -> None:
        """An outage (S3, Triton unreachable) is retried; refusals are final and handled inside."""
        delay = 1.0
        while not self._stop.is_set():
            try:
                step()
                return
            except Exception as exc:
                log.warning("model control step failed; retrying", error=repr(exc)[:300], retry_in_s=delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    @property
    def alive(self) -> bool:
        return self.error is None

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
