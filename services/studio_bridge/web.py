"""The bridge's HTTP side: Label Studio's webhooks, the images its tasks show (streamed from the
object store, never copied into Label Studio), health, metrics and the recent refusals."""

from __future__ import annotations

import asyncio
import hmac
import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from longtail.storage import ObjectStore
from studio_bridge.bridge import WEBHOOKS, Bridge, WebhookRefused

IMAGES = Counter("longtail_studio_images_total", "Images served to Label Studio, by outcome", ["outcome"])
MAX_WEBHOOK_BYTES = 4 * 1024 * 1024
ANSWER_WITHIN_S = 0.8  # Label Studio's webhook timeout is 1 s


def app(bridge: Bridge, objects: ObjectStore | None, ready: asyncio.Event) -> web.Application:
    async def webhook(request: web.Request) -> web.Response:
        if not bridge.authorized(request.headers.get("Authorization", "")):
            WEBHOOKS.labels("unauthorized").inc()
            return web.json_response({"error": "unauthorized: this endpoint takes Label Studio's webhooks, with the bridge's secret"}, status=401)
        try:
            payload = json.loads(await request.read())
        except ValueError as exc:
            bridge.refused(400, "rejected", f"the body is not JSON: {exc}", None)
            return web.json_response({"error": f"the body is not JSON: {exc}"}, status=400)
        # Label Studio waits 1 s for the answer, and never retries: what takes longer finishes in
        # the background (and whatever a webhook missed, the sync's reconciliation picks up).
        work = asyncio.ensure_future(bridge.process(payload))
        try:
            answer = await asyncio.wait_for(asyncio.shield(work), ANSWER_WITHIN_S)
        except TimeoutError:
            bridge.pending.add(work)
            work.add_done_callback(bridge.pending.discard)
            return web.json_response({"accepted": "processing"}, status=202)
        except WebhookRefused as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
        return web.json_response(answer)

    async def image(request: web.Request) -> web.Response:
        bucket, key = request.match_info["bucket"], request.match_info["key"]
        if not hmac.compare_digest(request.query.get("sig", ""), bridge.signature(bucket, key)):
            IMAGES.labels("forbidden").inc()
            return web.Response(status=403, text="bad or missing signature")
        if objects is None:
            IMAGES.labels("unavailable").inc()
            return web.Response(status=503, text="no object store configured (S3_*)")
        try:
            data = await asyncio.to_thread(objects.get, key, bucket)
        except Exception as exc:  # the object store's own error, named for the log
            IMAGES.labels("missing").inc()
            return web.Response(status=404, text=f"{bucket}/{key}: {type(exc).__name__}")
        IMAGES.labels("served").inc()
        kind = "image/jpeg" if key.endswith((".jpg", ".jpeg")) else "image/png"
        # Label Studio's <img> asks with crossorigin="anonymous": without this header the browser drops it
        return web.Response(body=data, content_type=kind, headers={"Cache-Control": "private, max-age=3600", "Access-Control-Allow-Origin": "*"})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ready": ready.is_set()}, status=200 if ready.is_set() else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def rejections(_: web.Request) -> web.Response:
        return web.json_response(list(bridge.rejections))

    application = web.Application(client_max_size=MAX_WEBHOOK_BYTES)
    application.add_routes([web.post("/webhook", webhook), web.get("/images/{bucket}/{key:.+}", image), web.get("/healthz", healthz), web.get("/metrics", metrics), web.get("/rejections", rejections)])
    return application
