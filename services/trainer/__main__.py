"""`python -m trainer` / `longtail serve trainer`: training runs, the regression gate, the registry.

Environment: KAFKA_BOOTSTRAP_SERVERS, S3_* (datasets, snapshots, the model repository),
OPERATOR_TOKEN_SECRET (operator auth of StartRun/Promote/Rollback; the trainer also signs its own
calls to the label store with it), LABEL_STORE_ADDR (tasks, suites, datasets, evaluation),
GRPC_PORT, METRICS_PORT, and TRAINER_* (TrainerSettings; docs/trainer.md).

Start-up: read models.published.v1 from the beginning (current PRODUCTION per model), declare the
tasks of tasks.yaml in the label store (schema, queue, default suite), recover persisted runs,
then serve. A consumer of labels.labels.v1 (group `trainer`) starts a run when a task gathered
TRAINER_LABEL_THRESHOLD new labels since the last label-triggered run.
"""

from __future__ import annotations

import asyncio
import threading
import time

from prometheus_client import Counter, Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail import config, topics
from longtail import tasks as tasks_mod
from longtail.auth import OperatorAuthSettings
from longtail.grpc_server import GrpcServer, run_service
from longtail.kafka import BatchConsumer, Producer, TopicFollower, read_time_range
from longtail.log import get_logger
from longtail.models.v1 import trainer_pb2 as T
from longtail.models.v1 import trainer_pb2_grpc
from longtail.registry import TRAINER
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics

from trainer.labels import LabelStoreClient
from trainer.registry import Registry
from trainer.runner import SERVICE, Settings, Trainer
from trainer.service import TrainerServicer
from trainer.triggers import LabelTrigger

SERVICE_NAME = TRAINER.grpc
TOPICS = (topics.MODELS_PUBLISHED, topics.MODELS_REFUSED, topics.LABELS_CREATED, topics.DEAD_LETTERS)
log = get_logger(__name__)

RUNS = Counter("longtail_trainer_runs_total", "Finished training runs by kind and status", ["service", "kind", "status"])
RUNNING = Gauge("longtail_trainer_run_progress_ratio", "Progress of the run in progress (0 when idle)", ["service"])


class TrainerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINER_", frozen=True, env_ignore_empty=True)
    model_name: str = Field("multitask", description="model trained by default (and by label-triggered runs)")
    tasks_file: str = Field("", description="task declarations (default: ./tasks.yaml, else the repository's)")
    threads: int = Field(2, ge=1, description="torch intra-op threads of a run (fixed: reproducibility)")
    epochs: int = Field(4, ge=1, description="epochs when a run does not say")
    fallback_samples: int = Field(800, ge=2, description="generated frames when a run has no labelled data")
    label_threshold: int = Field(500, ge=0, description="new labels of a task that trigger a run; 0 = off")
    consumer_group: str = Field(SERVICE, min_length=1)
    auto_promote: bool = Field(False, description="label-triggered runs publish accepted versions as PRODUCTION (else CANDIDATE)")
    detector_min_auc: float = Field(0.8, ge=0.0, le=1.0)
    gate_shift_px: int = Field(1, ge=0, le=8, description="the gate counts a lost case only if the baseline passed it with the image moved this many "
                                                        "pixels each way; 0 = every baseline pass counts")


class LabelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABEL_STORE_", frozen=True, env_ignore_empty=True)
    addr: str = Field(description="label store gRPC host:port (tasks, suites, datasets, suite evaluation)")


def _label_consumer(kafka: str, group: str, trigger: LabelTrigger, producer: Producer, stop: threading.Event) -> threading.Thread:
    def run() -> None:
        consumer = BatchConsumer(kafka, group, [topics.LABELS_CREATED], lambda records: trigger.on_labels([r.value for r in records]), producer)
        try:
            while not stop.is_set():
                consumer.poll_once()
        except Exception:
            log.exception("label consumer failed")
        finally:
            consumer.close()

    thread = threading.Thread(target=run, name="trainer-labels", daemon=True)
    thread.start()
    return thread


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    s3 = config.load(config.S3Settings)
    settings = config.load(TrainerSettings)
    label_settings = config.load(LabelSettings)
    operator_secret = config.load(OperatorAuthSettings).token_secret
    declared = tasks_mod.load(settings.tasks_file or None)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor)
    store = ObjectStore(s3, SERVICE)
    await asyncio.to_thread(store.ensure_bucket)
    registry = Registry(store)

    follower = TopicFollower(kafka.bootstrap_servers, {topics.MODELS_PUBLISHED: registry.on_published}, asyncio.get_running_loop(), name=SERVICE)
    follower.start()
    await follower.caught_up.wait()

    labels = LabelStoreClient(label_settings.addr, operator_secret)
    for attempt in range(60):  # the label store may still be starting
        try:
            declared_state = await asyncio.to_thread(labels.declare, declared)
            log.info("tasks declared in the label store", tasks=declared_state)
            break
        except Exception as exc:
            if attempt == 59:
                raise
            log.warning("label store not reachable yet", addr=label_settings.addr, error=repr(exc)[:200])
            await asyncio.sleep(1.0)

    producer = Producer(kafka.bootstrap_servers, SERVICE)

    def publish_event(topic, key, value) -> None:
        producer.produce(topic, key, value)
        producer.flush()  # an announced version must be on the topic before the run says SUCCEEDED

    trainer = Trainer(store, registry, declared, labels, publish_event,
                      Settings(threads=settings.threads, default_epochs=settings.epochs, fallback_samples=settings.fallback_samples,
                               detector_min_auc=settings.detector_min_auc, gate_shift_px=settings.gate_shift_px), default_model=settings.model_name)
    trainer.start()
    stop = threading.Event()
    consumer_thread = None
    if settings.label_threshold > 0:
        trigger = LabelTrigger(trainer, labels, settings.model_name, settings.label_threshold, settings.auto_promote)
        consumer_thread = _label_consumer(kafka.bootstrap_servers, settings.consumer_group, trigger, producer, stop)

    server = GrpcServer(SERVICE, service_settings)
    server.add(trainer_pb2_grpc.add_TrainerServiceServicer_to_server, TrainerServicer(trainer, operator_secret, lambda since, until: read_time_range(kafka.bootstrap_servers, topics.SHADOW_DISAGREEMENTS, since, until)), SERVICE_NAME)
    await server.start()

    finished = (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED)
    for kind in (T.RUN_KIND_MULTITASK, T.RUN_KIND_TRIGGER_DETECTOR):  # every series at 0 from the start
        for status in finished:
            RUNS.labels(SERVICE, T.RunKind.Name(kind), T.RunStatus.Name(status))

    async def watch() -> None:
        seen: set[str] = set()
        while True:
            await asyncio.sleep(0.5)
            if not trainer.alive or (consumer_thread is not None and not consumer_thread.is_alive() and not stop.is_set()):
                log.error("a worker thread stopped; shutting down")
                server.request_stop()
                return
            current = trainer.get(trainer.current) if trainer.current else None
            RUNNING.labels(SERVICE).set(current.progress if current else 0.0)
            for run in trainer.list():
                if run.run_id not in seen and run.status in finished:
                    seen.add(run.run_id)
                    if run.finished_at.ToSeconds() > started - 1:
                        RUNS.labels(SERVICE, T.RunKind.Name(run.spec.kind), T.RunStatus.Name(run.status)).inc()

    started = time.time()
    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        await server.serve_until_signal()
    finally:
        watcher.cancel()
        stop.set()
        await asyncio.to_thread(follower.stop)
        await asyncio.to_thread(trainer.stop)
        if consumer_thread is not None:
            await asyncio.to_thread(consumer_thread.join, 5)
        producer.close()
        labels.close()


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
