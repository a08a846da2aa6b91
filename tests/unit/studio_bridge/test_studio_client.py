"""Label Studio away: the bridge's client retries with backoff and then says so; its own mistakes
(4xx) are not retried and carry Label Studio's explanation."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from studio_bridge.client import StudioClient, StudioError, StudioUnavailable


async def _serve(answers: list[tuple[int, str]]):
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(request.headers.get("Authorization"))
        status, body = answers[min(len(calls) - 1, len(answers) - 1)]
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = TestServer(app)
    await server.start_server()
    return server, calls


def test_a_restarting_label_studio_is_retried_until_it_answers():
    async def run():
        server, calls = await _serve([(502, "bad gateway"), (503, "starting"), (200, '{"results": [{"id": 1, "title": "x"}]}')])
        client = StudioClient(str(server.make_url("")), "t0ken", retries=3, backoff_s=0.01)
        try:
            return await client.projects(), calls
        finally:
            await client.close()
            await server.close()

    projects, calls = asyncio.run(run())
    assert projects == [{"id": 1, "title": "x"}] and calls == ["Token t0ken"] * 3


def test_label_studio_down_is_reported_after_the_retries():
    async def run():
        client = StudioClient("http://127.0.0.1:9", "t", retries=2, backoff_s=0.01)  # nothing listens on port 9
        try:
            await client.projects()
        finally:
            await client.close()

    with pytest.raises(StudioUnavailable, match="GET /api/projects/"):
        asyncio.run(run())


def test_a_refused_request_is_not_retried_and_says_why():
    async def run():
        server, calls = await _serve([(400, '{"label_config": ["These labels still exist in annotations: snow"]}')])
        client = StudioClient(str(server.make_url("")), "t", retries=3, backoff_s=0.01)
        try:
            with pytest.raises(StudioError) as refused:
                await client.update_project(1, label_config="<View/>")
            return refused.value, calls
        finally:
            await client.close()
            await server.close()

    error, calls = asyncio.run(run())
    assert error.status == 400 and "still exist in annotations" in str(error) and len(calls) == 1
