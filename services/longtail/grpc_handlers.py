"""The plumbing every server interceptor of the project shares: replacing a handler's behavior
whatever its kind (unary, streaming), wrapping each method once rather than per call, reading the
status a handler set, and aborting with a status (typed so that the checker knows it raises)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NoReturn

import grpc


async def abort(context: Any, code: grpc.StatusCode, details: str) -> NoReturn:
    """`await context.abort(code, details)`, which always raises; typed so (grpc has no type
    information), so that the checker knows the code after it runs only when it did not abort."""
    await context.abort(code, details)
    raise AssertionError("ServicerContext.abort returned")


def status_name(context: Any, default: str) -> str:
    """The name of the status the handler set on `context` (`default` when it set none)."""
    try:
        code = context.code()
    except Exception:
        code = None
    if code is None:
        return default
    return getattr(code, "name", str(code))


def wrap_handler(handler, around: Callable[[Callable, bool], Callable]):
    """`handler` with its behavior replaced by `around(behavior, generator)`; `generator` says the
    new behavior must be an async generator (a streaming handler that yields). A streaming handler
    that writes with context.write() is a coroutine and stays one: grpc treats coroutine and
    async-generator handlers differently, and a generator layer costs memory per open stream."""
    for kind in ("unary_unary", "stream_unary", "unary_stream", "stream_stream"):
        behavior = getattr(handler, kind)
        if behavior:
            generator = kind.endswith("_stream") and not inspect.iscoroutinefunction(behavior)
            return handler._replace(**{kind: around(behavior, generator)})
    return handler


class PerMethodInterceptor(grpc.aio.ServerInterceptor):
    """A server interceptor that wraps each method's handler once (`_wrap`), not per call: a server
    with 10,000 open streams would otherwise keep 10,000 copies of the same wrapper alive."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Any, Any]] = {}  # method path -> (its handler, wrapped)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        path = handler_call_details.method
        known = self._wrapped.get(path)
        if known is None or known[0] is not handler:
            known = self._wrapped[path] = (handler, self._wrap(handler, path))
        return known[1]

    def _wrap(self, handler, path: str):
        raise NotImplementedError
