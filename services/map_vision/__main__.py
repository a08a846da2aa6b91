"""`python -m map_vision` / `longtail serve map-vision`: run the map-vision service.

Environment: KAFKA_BOOTSTRAP_SERVERS, GRPC_PORT, METRICS_PORT, OPERATOR_TOKEN_SECRET (optional:
enables SeedMap), MAP_VISION_SEED_FILE (optional JSON/YAML map loaded at start for features the
map does not have yet), MAP_VISION_CONSUMER_GROUP (default map-vision),
MAP_VISION_PUBLISH_INTERVAL_S, MAP_VISION_RECENT_DISAGREEMENTS, MAP_VISION_BATCH_SIZE,
MAP_VISION_STALL_TIMEOUT_S, and the map tunables MAP_VISION_<NAME> of map_vision.mapping.Tunables
(docs/map-vision.md).

Start-up: rebuild the map from the compacted mapvision.features.v1 (every record, from the
beginning), apply the seed file, then consume telemetry and serve. One replica writes the map
(see docs/map-vision.md).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from longtail import config, topics
from longtail.auth import OperatorAuthSettings
from longtail.grpc_server import GrpcServer, run_service
from longtail.kafka import Producer, TopicFollower
from longtail.log import get_logger
from longtail.mapvision.v1 import mapvision_pb2_grpc
from longtail.registry import MAP_VISION
from longtail.topics import ensure_topics

from map_vision.mapping import InvalidFeature, MapState, Tunables
from map_vision.seed import load_seed_file
from map_vision.service import MapVisionServicer, RecentDisagreements
from map_vision.worker import SERVICE, MapWorker

SERVICE_NAME = MAP_VISION.grpc
TOPICS = (topics.TELEMETRY, topics.MAP_FEATURES, topics.MAP_DISAGREEMENTS, topics.DEAD_LETTERS)
log = get_logger(__name__)


class MapVisionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAP_VISION_", frozen=True, env_ignore_empty=True)
    seed_file: Path | None = Field(None, description="JSON/YAML map file seeded at start (features not yet on the map)")
    consumer_group: str = Field(SERVICE, min_length=1)
    publish_interval_s: float = Field(5.0, ge=0, description="counters/refinements of a feature are published at most this often")
    recent_disagreements: int = Field(10_000, ge=1, description="disagreements kept for ListDisagreements")
    batch_size: int = Field(200, ge=1, description="telemetry records per consumer batch")
    stall_timeout_s: float = Field(60.0, gt=0, description="health turns NOT_SERVING when the consumer made no progress for this long")


def _operator_secret() -> str | None:
    if not os.environ.get("OPERATOR_TOKEN_SECRET"):
        return None
    return config.load(OperatorAuthSettings).token_secret


async def _watch(worker: MapWorker, server: GrpcServer, stall_timeout_s: float) -> None:
    """Liveness from real progress: a consumer that stopped consuming is not alive."""
    serving = True
    while True:
        await asyncio.sleep(1.0)
        if not worker.alive:
            log.error("telemetry consumer stopped; shutting down", error=repr(worker.error))
            server.request_stop()
            return
        healthy = time.monotonic() - worker.last_progress < stall_timeout_s
        if healthy != serving:
            serving = healthy
            log.warning("consumer progress", serving=serving)
            await server.set_serving(serving)


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    settings = config.load(MapVisionSettings)
    try:
        tunables = Tunables.from_env(os.environ)
    except ValueError as exc:
        raise config.ConfigError(str(exc)) from None
    operator_secret = _operator_secret()
    seeds = []
    if settings.seed_file is not None:
        try:
            seeds = load_seed_file(settings.seed_file)
        except (OSError, InvalidFeature) as exc:
            raise config.ConfigError(f"MAP_VISION_SEED_FILE is invalid: {exc}") from None
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor)

    state = MapState(tunables)
    lock = threading.RLock()
    restored = 0

    def on_feature(key, event) -> None:
        nonlocal restored
        state.restore(event, key)
        restored += 1

    follower = TopicFollower(kafka.bootstrap_servers, {topics.MAP_FEATURES: on_feature}, asyncio.get_running_loop(), name=SERVICE)
    follower.start()
    await follower.caught_up.wait()  # the whole map before the first comparison
    await asyncio.to_thread(follower.stop)  # single writer: our own updates need not come back
    created, _, _ = state.seed(seeds, only_new=True, now=time.time())
    log.info("map rebuilt", records=restored, features=len(state.features), seeded=created, seed_file=str(settings.seed_file or ""))

    producer = Producer(kafka.bootstrap_servers, SERVICE)
    recent = RecentDisagreements(settings.recent_disagreements)
    worker = MapWorker(state, lock, producer, kafka.bootstrap_servers, recent.add, group_id=settings.consumer_group,
                       publish_interval_s=settings.publish_interval_s, batch_size=settings.batch_size)
    worker.publish(force=True)
    await asyncio.to_thread(producer.flush)
    worker.update_gauges()

    async def publish() -> None:
        worker.publish()
        await asyncio.to_thread(producer.flush)

    server = GrpcServer(SERVICE, service_settings)
    server.add(mapvision_pb2_grpc.add_MapVisionServiceServicer_to_server,
               MapVisionServicer(state, lock, recent, publish, operator_secret), SERVICE_NAME)
    worker.start()
    await server.start()
    watch = asyncio.get_running_loop().create_task(_watch(worker, server, settings.stall_timeout_s))
    try:
        await server.serve_until_signal()
    finally:
        watch.cancel()
        await asyncio.to_thread(worker.stop)
        producer.close()
    if worker.error is not None:
        raise RuntimeError("map-vision telemetry consumer failed") from worker.error


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
