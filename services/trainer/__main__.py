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
import time

from prometheus_client import Counter, Gauge

from longtail import config, topics
from longtail import tasks as tasks_mod
from longtail.auth import OperatorAuthSettings
from longtail.grpc_client import service_credentials
from longtail.grpc_server import run_service
from longtail.kafka import BatchConsumer, ConsumerThread, Producer, TopicFollower, read_time_range
from longtail.log import get_logger
from longtail.models.v1 import trainer_pb2 as T
from longtail.models.v1 import trainer_pb2_grpc
from longtail.registry import TRAINER
from longtail.runtime import ServiceRuntime
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics

from trainer import backends
from trainer.labels import LabelStoreClient
from trainer.registry import Registry
from trainer.runner import SERVICE, Settings, Trainer
from trainer.service import TrainerServicer
from trainer.settings import TrainerSettings
from trainer.triggers import LabelTrigger

TOPICS = (topics.MODELS_PUBLISHED, topics.MODELS_REFUSED, topics.LABELS_CREATED, topics.DEAD_LETTERS)
log = get_logger(__name__)

RUNS = Counter("longtail_trainer_runs_total", "Finished training runs by kind and status", ["service", "kind", "status"])
RUNNING = Gauge("longtail_trainer_run_progress_ratio", "Progress of the run in progress (0 when idle)", ["service"])


async def report_runs(trainer: Trainer, started: float) -> None:
    """The run-progress gauge, and each run finished since start counted once."""
    finished = (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED)
    for kind in (T.RUN_KIND_MULTITASK, T.RUN_KIND_TRIGGER_DETECTOR):  # every series at 0 from the start
        for status in finished:
            RUNS.labels(SERVICE, T.RunKind.Name(kind), T.RunStatus.Name(status))
    seen: set[str] = set()
    while True:
        await asyncio.sleep(0.5)
        current = trainer.get(trainer.current) if trainer.current else None
        RUNNING.labels(SERVICE).set(current.progress if current else 0.0)
        for run in trainer.list():
            if run.run_id not in seen and run.status in finished:
                seen.add(run.run_id)
                if run.finished_at.ToSeconds() > started - 1:
                    RUNS.labels(SERVICE, T.RunKind.Name(run.spec.kind), T.RunStatus.Name(run.status)).inc()


async def declare_tasks(labels: LabelStoreClient, declared, addr: str) -> None:
    for attempt in range(60):  # the label store may still be starting
        try:
            declared_state = await asyncio.to_thread(labels.declare, declared)
            log.info("tasks declared in the label store", tasks=declared_state)
            return
        except Exception as exc:
            if attempt == 59:
                raise
            log.warning("label store not reachable yet", addr=addr, error=repr(exc)[:200])
            await asyncio.sleep(1.0)


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    s3 = config.load(config.S3Settings)
    settings = config.load(TrainerSettings)
    operator_secret = config.load(OperatorAuthSettings).token_secret
    declared = tasks_mod.load(settings.tasks_file or None)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor, kafka.min_insync_replicas)
    runtime = ServiceRuntime(SERVICE, service_settings, token_secret=operator_secret)
    store = ObjectStore(s3, SERVICE)
    await asyncio.to_thread(store.ensure_bucket)
    registry = Registry(store)

    follower = TopicFollower(kafka.bootstrap_servers, {topics.MODELS_PUBLISHED: registry.on_published}, asyncio.get_running_loop(), name=SERVICE)
    follower.start()
    runtime.on_shutdown(follower.stop)
    await follower.caught_up.wait()

    labels = LabelStoreClient(settings.label_store_addr, operator_secret, credentials=service_credentials(service_settings))
    runtime.on_shutdown(labels.close)
    await declare_tasks(labels, declared, settings.label_store_addr)
    producer = Producer(kafka.bootstrap_servers, SERVICE)
    runtime.on_shutdown(producer.close)

    def publish_event(topic, key, value) -> None:
        producer.produce(topic, key, value)
        producer.flush()  # an announced version must be on the topic before the run says SUCCEEDED

    trainer = Trainer(
        store,
        registry,
        declared,
        labels,
        publish_event,
        Settings(threads=settings.threads, default_epochs=settings.epochs, fallback_samples=settings.fallback_samples, detector_min_auc=settings.detector_min_auc, gate_shift_px=settings.gate_shift_px, backend=settings.backend),
        default_model=settings.model_name,
        backends=backends.configured(settings, store, s3),
    )
    runtime.add_worker("runner", trainer)
    if settings.label_threshold > 0:
        trigger = LabelTrigger(trainer, labels, settings.model_name, settings.label_threshold, settings.auto_promote)
        consumer = BatchConsumer(kafka.bootstrap_servers, settings.consumer_group, [topics.LABELS_CREATED], lambda records: trigger.on_labels([r.value for r in records]), producer)
        runtime.add_worker("label consumer", ConsumerThread(consumer, "trainer-labels"))

    runtime.server.add(trainer_pb2_grpc.add_TrainerServiceServicer_to_server, TrainerServicer(trainer, lambda since, until: read_time_range(kafka.bootstrap_servers, topics.SHADOW_DISAGREEMENTS, since, until)), TRAINER.grpc)
    runtime.background(report_runs(trainer, time.time()))
    await runtime.run()


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
