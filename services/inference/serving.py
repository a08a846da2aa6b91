"""Which model version serves, and how a new one replaces it without downtime.

Triton runs in explicit model-control mode over the model repository in the object store (locally
the PyTriton-launched server reads the local S3 server, in production the stock image reads the
bucket). The service alone decides what is loaded: every `load_model` call names the exact
versions (`version_policy: specific`). Every inference names an explicit version too, so
switching is one pointer assignment in this process, never a Triton-side "latest" race.

Swap to version N (current C, previous P), serialised on one control thread:
1. fetch + validate N in-process (`model_repo.load_version`: files, sha256, TorchScript loads,
   tasks and output layout, a forward pass). Invalid -> refused; C keeps serving.
2. stop leasing P and wait until its in-flight requests drain (C and N are what stays loaded);
3. `load_model(name, specific [C, N])`: Triton loads N next to C (C keeps answering meanwhile);
4. wait until N is READY and answers a warm-up request with the manifest's output width;
5. switch the pointer: new requests go to N; C stays loaded as the instant-rollback target.
Any failure in 3-4 -> refused, the previous version set is restored, C keeps serving.
A refusal is logged, counted and announced as `models.v1.ModelRefused` (refused_by "inference").
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from longtail import model_repo, topics
from longtail.log import get_logger
from longtail.model_repo import InvalidModelVersion, ModelVersion
from longtail.models.v1 import events_pb2 as model_events
from longtail.registry import INFERENCE

SERVICE = INFERENCE.name
log = get_logger(__name__)

SERVING_VERSION = Gauge("longtail_inference_serving_version", "Model version serving default traffic (0 = none)", ["service", "model"])
LOADED = Gauge("longtail_inference_loaded_version_info", "1 for each model version this replica keeps loaded in Triton", ["service", "model", "version", "role"])
MODEL_EVENTS = Counter("longtail_inference_model_versions_total", "Published versions handled, by outcome (served, refused, ignored; reloaded: after Triton lost them)", ["service", "model", "outcome"])
SWAP_SECONDS = Histogram("longtail_inference_model_swap_duration_seconds", "From a publication to serving the new version", ["service"], buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300))


class NotServing(RuntimeError):
    """No model version is being served yet (or the requested one is not loaded)."""


class TritonControl(Protocol):
    """What the manager needs from Triton (tritonclient in production, a fake in unit tests)."""

    def load(self, name: str, config_json: str) -> None: ...
    def server_ready(self) -> bool: ...
    def ready(self, name: str, version: int) -> bool: ...
    def infer(self, name: str, version: int, images: np.ndarray) -> np.ndarray: ...


class TritonGrpc:
    """tritonclient.grpc (sync): model control and inference for the control and worker threads."""

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        import tritonclient.grpc as triton_grpc

        self._grpc = triton_grpc
        self.address = address
        self.timeout_s = timeout_s
        self.client = triton_grpc.InferenceServerClient(address)

    def server_ready(self) -> bool:
        try:
            return bool(self.client.is_server_ready(client_timeout=2))
        except Exception:
            return False

    def load(self, name: str, config_json: str) -> None:
        # Blocks until Triton has (re)loaded every version of the policy, or raises.
        self.client.load_model(name, config=config_json, client_timeout=600)

    def ready(self, name: str, version: int) -> bool:
        try:
            return bool(self.client.is_model_ready(name, str(version), client_timeout=5))
        except Exception:
            return False

    def infer(self, name: str, version: int, images: np.ndarray) -> np.ndarray:
        inp = self._grpc.InferInput(model_repo.INPUT_NAME, list(images.shape), "UINT8")
        inp.set_data_from_numpy(np.ascontiguousarray(images, dtype=np.uint8))
        result = self.client.infer(name, [inp], model_version=str(version), outputs=[self._grpc.InferRequestedOutput(model_repo.OUTPUT_NAME)], client_timeout=self.timeout_s)
        return result.as_numpy(model_repo.OUTPUT_NAME)

    def close(self) -> None:
        self.client.close()


class ModelManager:
    def __init__(
        self, name: str, store, triton: TritonControl, *, on_refused: Callable[[model_events.ModelRefused], None] | None = None, load_timeout_s: float = 300.0, drain_timeout_s: float = 30.0, warmup_size: tuple[int, int] | None = None
    ) -> None:
        self.name = model_repo.check_name(name)
        self.store = store
        self.triton = triton
        self.on_refused = on_refused
        self.load_timeout_s = load_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.warmup_size = warmup_size
        self.current: ModelVersion | None = None
        self.previous: ModelVersion | None = None
        self.loaded_at: float | None = None
        self.refused: dict[int, str] = {}
        self._leasable: dict[int, ModelVersion] = {}
        self._inflight: Tally[int] = Tally()
        self._cond = threading.Condition()
        self._control = threading.Lock()  # one swap at a time
        self._gauge = SERVING_VERSION.labels(SERVICE, self.name)
        self._gauge.set(0)

    # -- serving side ----------------------------------------------------------------------------

    @property
    def serving(self) -> bool:
        return self.current is not None

    def loaded(self) -> list[ModelVersion]:
        with self._cond:
            return sorted(self._leasable.values(), key=lambda m: m.version)

    @contextlib.contextmanager
    def lease(self, version: int = 0) -> Iterator[ModelVersion]:
        """The version a request runs on (0 = the current production one), held until the request
        is done: a version is never unloaded under a request that uses it."""
        with self._cond:
            if version:
                mv = self._leasable.get(int(version))
                if mv is None:
                    raise NotServing(f"{self.name} version {version} is not loaded here (loaded: {sorted(self._leasable)})")
            else:
                mv = self.current
                if mv is None:
                    raise NotServing(f"no version of {self.name} is served yet")
            self._inflight[mv.version] += 1
        try:
            yield mv
        finally:
            with self._cond:
                self._inflight[mv.version] -= 1
                self._cond.notify_all()

    # -- control side ----------------------------------------------------------------------------

    def bootstrap(self, versions_newest_first: Sequence[int]) -> ModelVersion | None:
        """At start: serve the newest PRODUCTION version that loads (older ones are the fallback)."""
        for v in versions_newest_first:
            if self.apply(v) == "served":
                return self.current
        return None

    def apply(self, version: int) -> str:
        """Make `version` the served one. Returns "served", "already", "refused"."""
        with self._control:
            started = time.monotonic()
            version = int(version)
            if self.current is not None and self.current.version == version:
                return "already"
            if version in self.refused:
                log.warning("model version was refused before; still refused", model=self.name, version=version, reason=self.refused[version])
                return "refused"
            try:
                mv = model_repo.load_version(self.store, self.name, version)
            except InvalidModelVersion as exc:
                return self._refuse(version, str(exc))
            old = self.current
            keep = [m for m in (old, mv) if m is not None]
            try:
                wanted = {m.version for m in keep}
                # A rollback to the previous version finds it loaded already: nothing to load.
                if set(self._leasable) != wanted or not self.triton.ready(self.name, version):
                    self._retire_except(wanted)
                    self.triton.load(self.name, model_repo.config_json(mv.config, wanted))
                self._wait_ready(version)
                self._warm_up(mv)
            except Exception as exc:  # Triton refused or timed out: restore what served before
                self._restore(old)
                return self._refuse(version, f"Triton could not serve it: {type(exc).__name__}: {str(exc)[:300]}")
            with self._cond:
                self.previous, self.current = old, mv
                self._leasable = {m.version: m for m in keep}
                self.loaded_at = time.time()
            self._publish_gauges()
            MODEL_EVENTS.labels(SERVICE, self.name, "served").inc()
            SWAP_SECONDS.labels(SERVICE).observe(time.monotonic() - started)
            log.info("serving model version", model=self.name, version=version, previous=old.version if old else None, tasks=[t.name for t in mv.tasks], seconds=round(time.monotonic() - started, 2))
            return "served"

    def recover(self) -> bool:
        """After Triton lost the versions this replica serves (it restarted: in explicit mode it
        loads nothing by itself), load them again; True if it did. Raises while Triton is away
        (the caller's retry comes back)."""
        with self._control:
            current = self.current
            if current is None or not self.triton.server_ready() or self.triton.ready(self.name, current.version):
                return False
            wanted = set(self._leasable)
            log.warning("Triton lost the served versions (restarted?): loading them again", model=self.name, versions=sorted(wanted))
            self.triton.load(self.name, model_repo.config_json(current.config, wanted))
            self._wait_ready(current.version)
            MODEL_EVENTS.labels(SERVICE, self.name, "reloaded").inc()
            return True

    def _retire_except(self, keep: set[int]) -> None:
        """Stop leasing versions outside `keep` and wait for their requests to finish."""
        with self._cond:
            leaving = [v for v in self._leasable if v not in keep]
            for v in leaving:
                del self._leasable[v]
            deadline = time.monotonic() + self.drain_timeout_s
            while any(self._inflight[v] > 0 for v in leaving):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("in-flight requests did not drain before unloading", versions=leaving)
                    break
                self._cond.wait(remaining)

    def _wait_ready(self, version: int) -> None:
        deadline = time.monotonic() + self.load_timeout_s
        while not self.triton.ready(self.name, version):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not READY after {self.load_timeout_s:.0f}s")
            time.sleep(0.2)

    def _warm_up(self, mv: ModelVersion) -> None:
        """One real request before any traffic: loads lazy state and proves the I/O contract."""
        h, w = self.warmup_size or (int(mv.manifest["input"]["height"]), int(mv.manifest["input"]["width"]))
        raw = self.triton.infer(self.name, mv.version, np.zeros((1, h, w, 3), np.uint8))
        mv.split(raw)  # raises ValueError when the width differs from the manifest's layout

    def _restore(self, old: ModelVersion | None) -> None:
        keep = [m for m in (old,) if m is not None]
        try:
            if old is not None:  # keep == [old]
                self.triton.load(self.name, model_repo.config_json(old.config, [old.version]))
            with self._cond:
                self._leasable = {m.version: m for m in keep}
            if old is not None:
                self.previous = None
        except Exception as exc:  # still serving `old` if Triton kept it; the log says what happened
            log.error("could not restore the previous version set", model=self.name, error=repr(exc))
        self._publish_gauges()

    def _refuse(self, version: int, reason: str) -> str:
        self.refused[version] = reason
        MODEL_EVENTS.labels(SERVICE, self.name, "refused").inc()
        log.error("model version refused; the previous version keeps serving", model=self.name, version=version, reason=reason, serving=self.current.version if self.current else None)
        if self.on_refused is not None:
            event = model_events.ModelRefused(refused_by=SERVICE, reason=reason[:2000])
            event.model.name, event.model.version = self.name, version
            event.refused_at.GetCurrentTime()
            self.on_refused(event)
        return "refused"

    def _publish_gauges(self) -> None:
        self._gauge.set(self.current.version if self.current else 0)
        LOADED.clear()
        for m in self.loaded():
            role = "production" if self.current is not None and m.version == self.current.version else "previous"
            LOADED.labels(SERVICE, self.name, str(m.version), role).set(1)


def refusal_producer(producer) -> Callable[[model_events.ModelRefused], None]:
    """on_refused callback: announce on models.refused.v1 (key = model name) and wait for the ack."""

    def send(event: model_events.ModelRefused) -> None:
        producer.produce(topics.MODELS_REFUSED, event.model.name, event)
        try:
            producer.flush(10)
        except Exception as exc:  # the refusal stands either way; the log and metric have it
            log.warning("could not announce the refusal", error=repr(exc))

    return send
