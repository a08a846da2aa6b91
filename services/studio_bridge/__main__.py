"""`python -m studio_bridge` / `longtail studio bridge`: Label Studio as the label store's labelling
front end (docs/label-studio.md).

Environment: LABEL_STUDIO_URL, LABEL_STUDIO_TOKEN, LABEL_STORE_ADDR, STUDIO_BRIDGE_LABEL_STORE_TOKEN
(the bridge's identity: `longtail token label-studio --role bridge`), STUDIO_BRIDGE_WEBHOOK_SECRET,
S3_* (the images), GRPC_TLS_CA/CERT/KEY or GRPC_PLAINTEXT (how to reach the label store), and
STUDIO_BRIDGE_* (see BridgeSettings).
"""

from __future__ import annotations

import asyncio
import signal

import grpc
from aiohttp import web

from longtail import config
from longtail.grpc_client import service_credentials
from longtail.grpc_server import run_service
from longtail.log import get_logger
from longtail.storage import ObjectStore
from studio_bridge.bridge import Bridge
from studio_bridge.client import StudioClient, StudioError
from studio_bridge.label_store import LabelStoreClient
from studio_bridge.settings import BridgeSettings
from studio_bridge.web import app

SERVICE = "studio-bridge"
log = get_logger(__name__)


def build(settings: BridgeSettings, port: int) -> Bridge:
    credentials = service_credentials(config.load(config.ServiceSettings))
    studio = StudioClient(settings.label_studio_url, settings.label_studio_token)
    store = LabelStoreClient(settings.label_store_addr, settings.label_store_token, credentials)
    return Bridge(studio, store, settings.public(port), settings.webhook_secret, settings.image_secret, settings.tasks, settings.batch_size, settings.max_open, settings.lease_seconds, settings.project_prefix)


async def serve() -> None:
    settings = config.load(BridgeSettings)
    s3 = config.load_optional(config.S3Settings, "S3_ENDPOINT")
    objects = ObjectStore(s3, service=SERVICE) if s3 is not None else None
    ready, stop = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    bridge = build(settings, settings.http_port)
    runner = web.AppRunner(app(bridge, objects, ready), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    port = runner.addresses[0][1]
    bridge.public_url = settings.public(port)
    log.info("bridge listening", address=f"{settings.http_host}:{port}", public_url=bridge.public_url, label_studio=settings.label_studio_url)
    delay = 1.0
    try:
        while not stop.is_set():
            try:
                if not ready.is_set():
                    await bridge.start()
                    ready.set()
                await bridge.sync_once()
                delay = 1.0
                wait = settings.poll_seconds
            except (StudioError, grpc.RpcError, OSError) as exc:  # Label Studio or the label store away: the queue waits
                log.warning("sync failed, retrying", error=str(exc)[:500], retry_in_s=delay)
                wait, delay = delay, min(delay * 2, 60.0)
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
    finally:
        await runner.cleanup()
        await bridge.studio.close()
        bridge.store.close()


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
