"""Requests that are not the method's message, refused precisely: grpc itself answers UNKNOWN (and
logs a traceback) when a request does not decode, and a Timestamp or Duration that decodes yet is
no time makes the handlers' conversions raise. Both become INVALID_ARGUMENT naming the type or the
field (found by fuzzing every entry point, docs/security.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from longtail.grpc_handlers import PerMethodInterceptor, abort, wrap_handler


class _Malformed:
    """What a request that does not decode becomes, so its handler can refuse it precisely."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _tolerant(deserializer: Callable | None) -> Callable | None:
    if deserializer is None:
        return None
    descriptor = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else "message"

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - a DecodeError, or a message nested too deep
            return _Malformed(f"the request is not a valid {name}: {exc}")

    return deserialize


# What google.protobuf's Timestamp and Duration can represent (their own range checks).
_TIMESTAMP_SECONDS = (-62135596800, 253402300799)  # 0001-01-01 .. 9999-12-31
_DURATION_SECONDS = 315576000000  # 10,000 years


def _out_of_range(message: Any, path: str = "") -> str:
    """The first Timestamp or Duration field of a unary request that no conversion accepts, as
    "field: why" ('' when none): decoded, yet not a time, and handlers convert them everywhere."""
    if not hasattr(message, "ListFields"):
        return ""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        lo, hi = _TIMESTAMP_SECONDS
        ok = lo <= message.seconds <= hi and 0 <= message.nanos < 1_000_000_000
        return "" if ok else f"{path or 'timestamp'}: not a time between years 1 and 9999 (seconds={message.seconds}, nanos={message.nanos})"
    if name == "google.protobuf.Duration":
        ok = abs(message.seconds) <= _DURATION_SECONDS and abs(message.nanos) < 1_000_000_000 and (message.seconds * message.nanos >= 0)
        return "" if ok else f"{path or 'duration'}: not a duration of at most 10,000 years (seconds={message.seconds}, nanos={message.nanos})"
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        where = f"{path}.{field.name}" if path else field.name
        if field.message_type.GetOptions().map_entry:
            items = value.values() if field.message_type.fields_by_name["value"].type == field.TYPE_MESSAGE else ()
        elif field.is_repeated:
            items = value
        else:
            items = (value,)
        for item in items:
            found = _out_of_range(item, where)
            if found:
                return found
    return ""


class _CheckedRequests:
    """A stream's requests, refusing the first that did not decode. A slotted iterator, not an
    async generator: it lives as long as the stream (a car's session), ten thousand at a time."""

    __slots__ = ("_context", "_requests")

    def __init__(self, requests: Any, context: Any) -> None:
        self._requests, self._context = requests, context

    def __aiter__(self) -> _CheckedRequests:
        return self

    async def __anext__(self) -> Any:
        request = await self._requests.__anext__()
        if isinstance(request, _Malformed):
            await abort(self._context, grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        return request


class DecodingInterceptor(PerMethodInterceptor):
    """Requests that are not the method's message get INVALID_ARGUMENT naming the type, and so do
    unary requests with a time no conversion accepts."""

    def _wrap(self, handler, path: str):
        streaming_requests = handler.request_streaming

        async def first_checked(request: Any, context: Any) -> Any:
            if streaming_requests:
                return _CheckedRequests(request, context)
            if isinstance(request, _Malformed):
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            out_of_range = _out_of_range(request)
            if out_of_range:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, out_of_range)
            return request

        def around(behavior: Callable, generator: bool) -> Callable:
            if generator:

                async def stream(request: Any, context: Any):
                    async for item in behavior(await first_checked(request, context), context):
                        yield item

                return stream

            async def call(request: Any, context: Any) -> Any:
                return await behavior(await first_checked(request, context), context)

            return call

        return wrap_handler(handler, around)._replace(request_deserializer=_tolerant(handler.request_deserializer))
