"""`python -m map_vision` / `longtail serve map-vision`: run the map-vision service.

Environment: KAFKA_BOOTSTRAP_SERVERS, GRPC_PORT, METRICS_PORT, OPERATOR_TOKEN_SECRET (optional:
enables SeedMap), MAP_VISION_SEED_FILE (optional JSON/YAML map loaded at start for features the
map does not have yet), MAP_VISION_CONSUMER_GROUP (default map-vision),
MAP_VISION_PUBLISH_INTERVAL_S, MAP_VISION_RECENT_DISAGREEMENTS, MAP_VISION_BATCH_SIZE,
MAP_VISION_STALL_TIMEOUT_S, and the map tunables MAP_VISION_<NAME> of map_vision.mapping.Tunables
(map_vision/settings.py; docs/map-vision.md).

Start-up: rebuild the map from the compacted mapvision.features.v1 (every record, from the
beginning), apply the seed file, then consume telemetry and serve. One replica writes the map
(see docs/map-vision.md).
"""

from __future__ import annotations

import asyncio
import threading
import time

from longtail import config, topics
from longtail.auth import OperatorAuthSettings
from longtail.grpc_server import run_service
from longtail.kafka import Producer, TopicFollower
from longtail.log import get_logger
from longtail.mapvision.v1 import mapvision_pb2_grpc
from longtail.registry import MAP_VISION
from longtail.runtime import ServiceRuntime
from longtail.topics import ensure_topics

from map_vision.mapping import InvalidFeature, MapState
from map_vision.seed import load_seed_file
from map_vision.service import MapVisionServicer, RecentDisagreements
from map_vision.settings import MapVisionSettings
from map_vision.worker import SERVICE, MapWorker

TOPICS = (topics.TELEMETRY, topics.MAP_FEATURES, topics.MAP_DISAGREEMENTS, topics.DEAD_LETTERS)
log = get_logger(__name__)


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    settings = config.load(MapVisionSettings)
    operator = config.load_optional(OperatorAuthSettings, "OPERATOR_TOKEN_SECRET")  # tokens (SeedMap) accepted
    seeds = []
    if settings.seed_file is not None:
        try:
            seeds = load_seed_file(settings.seed_file)
        except (OSError, InvalidFeature) as exc:
            raise config.ConfigError(f"MAP_VISION_SEED_FILE is invalid: {exc}") from None
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, TOPICS, kafka.replication_factor, kafka.min_insync_replicas)
    runtime = ServiceRuntime(SERVICE, service_settings, token_secret=operator.token_secret if operator is not None else None)

    state = MapState(settings.tunables())
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
    runtime.on_shutdown(producer.close)
    recent = RecentDisagreements(settings.recent_disagreements)
    worker = MapWorker(state, lock, producer, kafka.bootstrap_servers, recent.add, group_id=settings.consumer_group, publish_interval_s=settings.publish_interval_s, batch_size=settings.batch_size)
    worker.publish(force=True)
    await asyncio.to_thread(producer.flush)
    worker.update_gauges()

    async def publish() -> None:
        worker.publish()
        await asyncio.to_thread(producer.flush)

    runtime.server.add(mapvision_pb2_grpc.add_MapVisionServiceServicer_to_server, MapVisionServicer(state, lock, recent, publish), MAP_VISION.grpc)
    runtime.add_worker("telemetry consumer", worker, settings.stall_timeout_s)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
