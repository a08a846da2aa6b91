"""`python -m inference` / `longtail serve inference`: score snapshots on NVIDIA Triton.

Environment: KAFKA_BOOTSTRAP_SERVERS, S3_ENDPOINT/S3_ACCESS_KEY/S3_SECRET_KEY/S3_BUCKET,
TRITON_GRPC_ADDR (a Triton in explicit model-control mode over the S3 model repository),
GRPC_PORT, METRICS_PORT, and INFERENCE_MODEL_NAME (default multitask), INFERENCE_CONSUMER_GROUP,
INFERENCE_BATCH_SIZE, INFERENCE_MAX_BATCH, INFERENCE_LOAD_TIMEOUT_S, INFERENCE_STALL_TIMEOUT_S,
INFERENCE_TRITON_WAIT_S (inference/settings.py; docs/inference.md).

Start-up: read models.published.v1 from the beginning (every replica needs every publication, so
no consumer group) to find the newest PRODUCTION version of the model; load it into Triton (older
ones are the fallback if it is refused); only then consume snapshots — until a version serves,
they wait in Kafka and health says NOT_SERVING. Later publications swap versions without
downtime (inference/serving.py).
"""

from __future__ import annotations

import asyncio
import time

from longtail import config, topics
from longtail.auth import OperatorAuthSettings
from longtail.common.v1 import common_pb2
from longtail.grpc_server import run_service
from longtail.inference.v1 import inference_pb2_grpc
from longtail.kafka import Producer, TopicFollower
from longtail.log import get_logger
from longtail.registry import INFERENCE
from longtail.runtime import ServiceRuntime
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics

from inference.model_control import ModelControl
from inference.service import InferenceServicer
from inference.serving import SERVICE, ModelManager, TritonGrpc, refusal_producer
from inference.settings import InferenceSettings
from inference.worker import SnapshotWorker

TOPICS = (topics.SNAPSHOTS, topics.INFERENCE_RESULTS, topics.MODELS_PUBLISHED, topics.MODELS_REFUSED, topics.DEAD_LETTERS)
log = get_logger(__name__)


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    s3 = config.load(config.S3Settings)
    triton_settings = config.load(config.TritonSettings)
    settings = config.load(InferenceSettings)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor, kafka.min_insync_replicas)
    operator = config.load_optional(OperatorAuthSettings, "OPERATOR_TOKEN_SECRET")  # tokens (Infer) accepted
    runtime = ServiceRuntime(SERVICE, service_settings, token_secret=operator.token_secret if operator is not None else None)

    store = ObjectStore(s3, SERVICE)
    triton = TritonGrpc(triton_settings.grpc_addr)
    runtime.on_shutdown(triton.close)
    deadline = time.monotonic() + settings.triton_wait_s
    while not await asyncio.to_thread(triton.server_ready):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Triton at {triton_settings.grpc_addr} is not ready after {settings.triton_wait_s:.0f}s")
        await asyncio.sleep(1.0)

    producer = Producer(kafka.bootstrap_servers, SERVICE)
    runtime.on_shutdown(producer.close)
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

    servicer = InferenceServicer(manager, store)
    runtime.on_shutdown(servicer.close)
    worker = SnapshotWorker(manager, store, producer, kafka.bootstrap_servers, group_id=settings.consumer_group, batch_size=settings.batch_size, max_batch=settings.max_batch)
    # Snapshots wait in Kafka until a model can score them: the consumer starts once a version serves.
    runtime.add_worker("snapshot consumer", worker, settings.stall_timeout_s, start=False)
    follower = TopicFollower(kafka.bootstrap_servers, {topics.MODELS_PUBLISHED: on_published}, asyncio.get_running_loop(), name=SERVICE)
    follower.start()
    await follower.caught_up.wait()
    log.info("model publications read", model=manager.name, production_versions=history[-5:])
    runtime.add_worker("model control", control, start=False)
    control.start(history)
    runtime.on_shutdown(follower.stop)  # first: no publication arrives while the rest stops

    async def start_consumer_when_serving() -> None:
        while not manager.serving:
            await asyncio.sleep(0.5)
        worker.start()

    runtime.ready_when(lambda: manager.serving)
    runtime.background(start_consumer_when_serving())
    runtime.server.add(inference_pb2_grpc.add_InferenceServiceServicer_to_server, servicer, INFERENCE.grpc)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
