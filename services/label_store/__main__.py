"""`python -m label_store` / `longtail serve label-store`.

Environment: KAFKA_BOOTSTRAP_SERVERS, OPERATOR_TOKEN_SECRET (admin writes), DATABASE_URL
(default: SQLite at $LABEL_STORE_DATA_DIR/labels.db; postgresql+psycopg://... in production),
S3_* (dataset manifests; optional), GRPC_PORT, METRICS_PORT, and LABEL_STORE_* (see
LabelStoreSettings). Start-up: apply the alembic migrations, seed the shared model's tasks if
missing, then consume snapshots and serve.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail import config, topics
from longtail.auth import OperatorAuthSettings
from longtail.grpc_server import GrpcServer, run_service
from longtail.kafka import Producer
from longtail.labels.v1 import labels_pb2_grpc
from longtail.log import get_logger
from longtail.registry import LABEL_STORE
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics

from label_store import db
from label_store.schema import default_tasks
from label_store.service import SERVICE, LabelStoreServicer, OutboxPublisher, update_gauges
from label_store.store import LabelStore
from label_store.worker import SampleWorker

SERVICE_NAME = LABEL_STORE.grpc
TOPICS = (topics.SNAPSHOTS, topics.INFERENCE_RESULTS, topics.SAMPLES_REGISTERED, topics.LABELS_CREATED,
          topics.DATASETS_PUBLISHED, topics.SUITES_EVALUATED, topics.DEAD_LETTERS)
log = get_logger(__name__)


class LabelStoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABEL_STORE_", frozen=True, env_ignore_empty=True)
    data_dir: Path = Field(Path("label-store-data"), description="where the default SQLite database lives")
    consumer_group: str = Field(SERVICE, min_length=1)
    lease_seconds: float = Field(600.0, gt=0, description="default lease duration")
    seed_tasks: bool = Field(True, description="create the shared model's tasks (stop_sign, traffic_light) if missing")
    batch_size: int = Field(200, ge=1)
    stall_timeout_s: float = Field(60.0, gt=0)
    db_pool_size: int = Field(20, ge=1)


def database_url(settings: LabelStoreSettings) -> str:
    url = os.environ.get("DATABASE_URL", "").strip()
    return url or f"sqlite:///{(settings.data_dir / 'labels.db').resolve()}"


async def _watch(worker: SampleWorker, server: GrpcServer, stall_timeout_s: float) -> None:
    """Liveness from real progress: a consumer that stopped consuming is not alive."""
    serving = True
    while True:
        await asyncio.sleep(1.0)
        if not worker.alive:
            log.error("snapshot consumer stopped; shutting down", error=repr(worker.error))
            server.request_stop()
            return
        healthy = time.monotonic() - worker.last_progress < stall_timeout_s
        if healthy != serving:
            serving = healthy
            await server.set_serving(serving)


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    settings = config.load(LabelStoreSettings)
    operator_secret = config.load(OperatorAuthSettings).token_secret
    objects = None
    if os.environ.get("S3_ENDPOINT"):
        objects = ObjectStore(config.load(config.S3Settings), service=SERVICE)
        await asyncio.to_thread(objects.ensure_bucket)
    url = database_url(settings)
    engine = db.create_engine(url, settings.db_pool_size)
    revision = await asyncio.to_thread(db.migrate, engine)
    store = LabelStore(engine, objects, default_lease_s=settings.lease_seconds)
    seeded = await asyncio.to_thread(store.ensure_tasks, default_tasks()) if settings.seed_tasks else []
    log.info("database ready", dialect=engine.dialect.name, revision=revision, seeded_tasks=seeded)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor)

    producer = Producer(kafka.bootstrap_servers, SERVICE)
    publisher = OutboxPublisher(store, producer)
    loop = asyncio.get_running_loop()
    worker = SampleWorker(store, producer, kafka.bootstrap_servers, settings.consumer_group, settings.batch_size,
                          on_change=lambda: loop.call_soon_threadsafe(publisher.wake.set))
    server = GrpcServer(SERVICE, service_settings)
    server.add(labels_pb2_grpc.add_LabelStoreServiceServicer_to_server, LabelStoreServicer(store, operator_secret, publisher), SERVICE_NAME)
    worker.start()
    await server.start()
    background = [loop.create_task(publisher.run()), loop.create_task(update_gauges(store)),
                  loop.create_task(_watch(worker, server, settings.stall_timeout_s))]
    try:
        await server.serve_until_signal()
    finally:
        for task in background:
            task.cancel()
        await asyncio.to_thread(worker.stop)
        try:
            await asyncio.to_thread(publisher.drain_once)  # what is committed goes out now, or at the next start
        except Exception as exc:
            log.warning("outbox not drained at shutdown; it will be at the next start", error=repr(exc))
        producer.close()
        engine.dispose()
    if worker.error is not None:
        raise RuntimeError("label-store snapshot consumer failed") from worker.error


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
