"""`python -m inference` / `longtail serve inference`: score snapshots on NVIDIA Triton.

Environment: KAFKA_BOOTSTRAP_SERVERS, S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY/S3_BUCKET,
TRITON_GRPC_ADDR (a Triton in explicit model-control mode over the S3 model repository),
GRPC_PORT, METRICS_PORT, and INFERENCE_MODEL_NAME (default multitask), INFERENCE_CONSUMER_GROUP,
INFERENCE_BATCH_SIZE, INFERENCE_MAX_BATCH, INFERENCE_LOAD_TIMEOUT_S, INFERENCE_STALL_TIMEOUT_S,
INFERENCE_TRITON_WAIT_S (docs/inference.md).

Start-up: read models.published.v1 from the beginning (every replica needs every publication, so
no consumer group) to find the newest PRODUCTION version of the model; load it into Triton (older
ones are the fallback if it is refused); only then consume snapshots — until a version serves,
they wait in Kafka and health says NOT_SERVING. Later publications swap versions without
downtime (inference/serving.py).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail import config, topics
from longtail.common.v1 import common_pb2
from longtail.grpc_server import GrpcServer, run_service
from longtail.inference.v1 import inference_pb2_grpc
from longtail.kafka import Producer, TopicFollower
from longtail.log import get_logger
from longtail.registry import INFERENCE
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics

from inference.service import InferenceServicer
from inference.serving import MODEL_EVENTS, SERVICE, ModelManager, TritonGrpc, refusal_producer
from inference.worker import SnapshotWorker

SERVICE_NAME = INFERENCE.grpc
TOPICS = (topics.SNAPSHOTS, topics.INFERENCE_RESULTS, topics.MODELS_PUBLISHED, topics.MODELS_REFUSED, topics.DEAD_LETTERS)
log = get_logger(__name__)


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", frozen=True, env_ignore_empty=True)
    model_name: str = Field("multitask", description="Triton model name (folder under models/) served by default")
    consumer_group: str = Field(SERVICE, min_length=1)
    batch_size: int = Field(64, ge=1, description="snapshot records per consumer batch")
    max_batch: int = Field(64, ge=1, description="images per Triton call (at most the model's max_batch_size)")
    load_timeout_s: float = Field(300.0, gt=0, description="a version not READY in Triton after this is refused")
    stall_timeout_s: float = Field(60.0, gt=0, description="health turns NOT_SERVING when the consumer made no progress for this long")
    triton_wait_s: float = Field(120.0, ge=0, description="how long to wait for Triton at start-up")


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

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


async def _watch(manager: ModelManager, worker: SnapshotWorker, control: ModelControl, server: GrpcServer, stall_timeout_s: float) -> None:
    """Readiness = a version serves and the consumer makes progress; a dead thread stops the process."""
    serving = (False, True)  # (ready, live), as set at start
    while True:
        await asyncio.sleep(0.5)
        if control.error is not None or (worker.started and not worker.alive):
            log.error("a worker thread stopped; shutting down", control=repr(control.error), worker=repr(worker.error))
            server.request_stop()
            return
        if manager.serving and not worker.started:
            worker.start()  # snapshots wait in Kafka until a model can score them
        progressing = not worker.started or time.monotonic() - worker.last_progress < stall_timeout_s
        ready, live = manager.serving and progressing, progressing
        if (ready, live) != serving:
            serving = (ready, live)
            log.info("health", ready=ready, live=live)
            await server.set_serving(live)  # "" and the service name
            if live and not ready:
                await server.set_serving(False, liveness=False)  # no model yet: not ready, but alive


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    s3 = config.load(config.S3Settings)
    triton_settings = config.load(config.TritonSettings)
    settings = config.load(InferenceSettings)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor)

    store = ObjectStore(s3, SERVICE)
    triton = TritonGrpc(triton_settings.grpc_addr)
    deadline = time.monotonic() + settings.triton_wait_s
    while not await asyncio.to_thread(triton.server_ready):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Triton at {triton_settings.grpc_addr} is not ready after {settings.triton_wait_s:.0f}s")
        await asyncio.sleep(1.0)

    producer = Producer(kafka.bootstrap_servers, SERVICE)
    manager = ModelManager(settings.model_name, store, triton, on_refused=refusal_producer(producer), load_timeout_s=settings.load_timeout_s)
    control = ModelControl(manager)
    history: list[int] = []

    def on_published(_key, event) -> None:
        if event is None or event.model.name != manager.name or event.role != common_pb2.MODEL_ROLE_PRODUCTION:
            return  # candidates run in shadow mode on the cars; trigger detectors are not ours
        if follower.caught_up.is_set():
            control.pending.put(event.model.version)
        else:
            history.append(event.model.version)

    follower = TopicFollower(kafka.bootstrap_servers, {topics.MODELS_PUBLISHED: on_published}, asyncio.get_running_loop(), name=SERVICE)
    follower.start()
    await follower.caught_up.wait()
    log.info("model publications read", model=manager.name, production_versions=history[-5:])
    control.start(history)

    worker = SnapshotWorker(manager, store, producer, kafka.bootstrap_servers, group_id=settings.consumer_group,
                            batch_size=settings.batch_size, max_batch=settings.max_batch)
    server = GrpcServer(SERVICE, service_settings)
    servicer = InferenceServicer(manager, store)
    server.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server, servicer, SERVICE_NAME)
    await server.start()
    await server.set_serving(False, liveness=False)  # not ready until a version serves; alive meanwhile
    watch = asyncio.get_running_loop().create_task(_watch(manager, worker, control, server, settings.stall_timeout_s))
    try:
        await server.serve_until_signal()
    finally:
        watch.cancel()
        await asyncio.to_thread(follower.stop)
        await asyncio.to_thread(control.stop)
        await asyncio.to_thread(worker.stop)
        servicer.close()
        producer.close()
        triton.close()
    if worker.error is not None:
        raise RuntimeError("inference snapshot consumer failed") from worker.error


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
