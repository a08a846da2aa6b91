"""`python -m gateway` / `longtail serve gateway`: run one fleet-gateway replica.

Environment: KAFKA_BOOTSTRAP_SERVERS, S3_*, FLEET_TOKEN_SECRET, GRPC_PORT, METRICS_PORT, GATEWAY_*.
"""

from __future__ import annotations

import os

# grpc reads GRPC_EXPERIMENTS once, at its initialisation: set before anything imports grpc.
# fuse_filters merges the server's per-call filters into one: ~3 KB less per open Session
# stream (docs/gateway.md, "Memory per car"). An operator's own GRPC_EXPERIMENTS wins.
os.environ.setdefault("GRPC_EXPERIMENTS", "fuse_filters")

import asyncio

from longtail import config
from longtail.auth import FleetAuthSettings
from longtail.gc_tuning import tune_gc
from longtail.grpc_server import run_service
from longtail.kafka import Producer, TopicFollower
from longtail.runtime import ServiceRuntime
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics

from gateway.fleet_state import FleetState, all_topics, follower_handlers
from gateway.service import SERVICE, SERVICE_NAME, FleetGateway, add_to_server
from gateway.settings import GatewaySettings


async def serve(service_settings: config.ServiceSettings | None = None, ready: asyncio.Event | None = None) -> None:
    service_settings = service_settings or config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    secret = config.load(FleetAuthSettings).token_secret
    settings = config.load(GatewaySettings)
    store = ObjectStore(config.load(config.S3Settings), service=SERVICE)
    await asyncio.to_thread(store.ensure_bucket)
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, all_topics(), kafka.replication_factor, kafka.min_insync_replicas)

    runtime = ServiceRuntime(SERVICE, service_settings, max_message_bytes=max(8 << 20, settings.max_chunk_bytes + (1 << 20)))
    producer = Producer(kafka.bootstrap_servers, SERVICE)
    runtime.on_shutdown(producer.close)
    state = FleetState(SERVICE, settings.max_pending_commands, settings.fleet_model)
    follower = TopicFollower(kafka.bootstrap_servers, follower_handlers(state), asyncio.get_running_loop(), name=SERVICE)
    follower.start()
    runtime.on_shutdown(follower.stop)
    await follower.caught_up.wait()  # serve cars only once the current triggers and models are known
    tune_gc()

    gateway = FleetGateway(settings, secret, producer, store, state)
    if settings.revoked_file:
        runtime.background(gateway.watch_revocations())
    runtime.server.add(add_to_server, gateway, SERVICE_NAME)
    await runtime.run(started=ready)


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
