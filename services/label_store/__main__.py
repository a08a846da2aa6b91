"""`python -m label_store` / `longtail serve label-store`.

Environment: KAFKA_BOOTSTRAP_SERVERS, OPERATOR_TOKEN_SECRET (admin writes), DATABASE_URL
(default: SQLite at $LABEL_STORE_DATA_DIR/labels.db; postgresql+psycopg://... in production),
S3_* (dataset manifests; optional), GRPC_PORT, METRICS_PORT, and LABEL_STORE_* (see
LabelStoreSettings). Start-up: apply the alembic migrations, seed the shared model's tasks if
missing, then consume snapshots and serve.
"""

from __future__ import annotations

import asyncio

from longtail import config, topics
from longtail.auth import OperatorAuthSettings
from longtail.grpc_server import run_service
from longtail.kafka import Producer
from longtail.labels.v1 import labels_pb2_grpc
from longtail.log import get_logger
from longtail.registry import LABEL_STORE
from longtail.runtime import ServiceRuntime
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics

from label_store import db
from label_store.schema import default_tasks
from label_store.service import SERVICE, LabelStoreServicer, OutboxPublisher, update_gauges
from label_store.settings import LabelStoreSettings, database_url
from label_store.store import LabelStore
from label_store.worker import SampleWorker

TOPICS = (topics.SNAPSHOTS, topics.INFERENCE_RESULTS, topics.SAMPLES_REGISTERED, topics.LABELS_CREATED, topics.DATASETS_PUBLISHED, topics.SUITES_EVALUATED, topics.DEAD_LETTERS)
log = get_logger(__name__)


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    settings = config.load(LabelStoreSettings)
    operator_secret = config.load(OperatorAuthSettings).token_secret
    s3 = config.load_optional(config.S3Settings, "S3_ENDPOINT")  # dataset manifests in the object store
    runtime = ServiceRuntime(SERVICE, service_settings, token_secret=operator_secret)

    objects = None
    if s3 is not None:
        objects = ObjectStore(s3, service=SERVICE)
        await asyncio.to_thread(objects.ensure_bucket)
    engine = db.create_engine(database_url(settings), settings.db_pool_size)
    runtime.on_shutdown(engine.dispose)
    revision = await asyncio.to_thread(db.migrate, engine)
    store = LabelStore(engine, objects, default_lease_s=settings.lease_seconds)
    seeded = await asyncio.to_thread(store.tasks.ensure, default_tasks()) if settings.seed_tasks else []
    log.info("database ready", dialect=engine.dialect.name, revision=revision, seeded_tasks=seeded)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor, kafka.min_insync_replicas)

    producer = Producer(kafka.bootstrap_servers, SERVICE)
    runtime.on_shutdown(producer.close)
    publisher = OutboxPublisher(store, producer)
    runtime.on_shutdown(publisher.drain_once)  # what is committed goes out now, or at the next start
    loop = asyncio.get_running_loop()
    worker = SampleWorker(store, producer, kafka.bootstrap_servers, settings.consumer_group, settings.batch_size, on_change=lambda: loop.call_soon_threadsafe(publisher.wake.set))
    runtime.server.add(labels_pb2_grpc.add_LabelStoreServiceServicer_to_server, LabelStoreServicer(store, publisher), LABEL_STORE.grpc)
    runtime.add_worker("snapshot consumer", worker, settings.stall_timeout_s)
    runtime.background(publisher.run())
    runtime.background(update_gauges(store))
    await runtime.run()


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
