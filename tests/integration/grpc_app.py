"""A minimal service on the shared bootstrap, for the tests: `Sleep` waits the seconds it is sent.

Run as a script: python grpc_app.py <port> <metrics_port>; prints READY when serving.
"""

import asyncio
import sys

import grpc

from longtail import access
from longtail.config import ServiceSettings
from longtail.grpc_server import GrpcServer

SERVICE = "longtail.testing.v1.SleepService"


def register(_servicer, server):
    async def sleep(request: bytes, context) -> bytes:
        seconds = float(request.decode())
        if seconds < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "seconds must be >= 0")
        await asyncio.sleep(seconds)
        return b"slept " + request

    handler = grpc.unary_unary_rpc_method_handler(sleep)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {"Sleep": handler})])


async def main(port: int, metrics_port: int) -> None:
    server = GrpcServer("test-app", ServiceSettings(grpc_port=port, metrics_port=metrics_port, shutdown_grace_seconds=10), extra_rules={f"/{SERVICE}/Sleep": access.OPEN})
    server.add(register, None, SERVICE)
    await server.start()
    print("READY", flush=True)
    await server.serve_until_signal()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
