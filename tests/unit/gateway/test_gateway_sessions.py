"""Car sessions in the gateway: the bounded outbox, disconnecting a car that falls behind, one
serialization per broadcast, and the metrics interceptor keeping coroutine stream handlers."""

from __future__ import annotations

import asyncio
import inspect

import grpc

from longtail.fleet.v1 import fleet_pb2
from longtail.grpc_server import MetricsInterceptor
from longtail.triggers.v1 import triggers_pb2

from gateway.fleet_state import CarSession, FleetState, activate_command


def ack(seq: int) -> fleet_pb2.ServerMessage:
    return fleet_pb2.ServerMessage(ack=fleet_pb2.Ack(batch_seq=seq))


async def drain(session: CarSession) -> list[bytes]:
    written = []
    while (data := await session.next()) is not None:
        written.append(data)
    return written


def test_messages_queued_before_close_are_written_in_order_then_the_session_ends():
    async def run():
        session = CarSession("car-1", maxsize=8)
        for seq in (1, 2, 3):
            assert session.offer(ack(seq))
        session.close()
        assert not session.offer(ack(4))  # closed: refused
        return await drain(session)

    assert [fleet_pb2.ServerMessage.FromString(d).ack.batch_seq for d in asyncio.run(run())] == [1, 2, 3]


def test_the_writer_waits_for_messages_and_wakes_on_offer_and_on_close():
    async def run():
        session = CarSession("car-1", maxsize=8)
        writer = asyncio.create_task(drain(session))
        await asyncio.sleep(0)
        session.offer(ack(1))
        await asyncio.sleep(0)
        session.offer(ack(2))
        session.close()
        return await asyncio.wait_for(writer, 1)

    assert len(asyncio.run(run())) == 2


def test_a_car_that_falls_behind_is_disconnected_not_buffered():
    async def run():
        session = CarSession("car-1", maxsize=2)
        results = [session.offer(ack(seq)) for seq in (1, 2, 3)]
        return results, session.overflowed, session.closed, await drain(session)

    results, overflowed, closed, written = asyncio.run(run())
    assert results == [True, True, False]
    assert overflowed and closed
    assert written == []  # it reconnects and gets the current state; nothing more is written


def test_broadcast_serializes_once_and_skips_closed_sessions():
    async def run():
        state = FleetState("test", max_pending_commands=10)
        sessions = [CarSession(f"car-{i}", maxsize=8) for i in range(3)]
        for session in sessions:
            state.attach(session)
        sessions[2].close()
        trigger = triggers_pb2.Trigger(trigger_id="t1", version=1, state=triggers_pb2.TRIGGER_STATE_ACTIVE)
        command = activate_command(trigger)
        delivered = state.broadcast(command)
        return delivered, command, [s.outbox for s in sessions]

    delivered, command, outboxes = asyncio.run(run())
    assert delivered == 2
    assert outboxes[0] == outboxes[1] == [fleet_pb2.ServerMessage(command=command).SerializeToString()]
    assert outboxes[0][0] is outboxes[1][0]  # the same bytes object: serialized once
    assert outboxes[2] == []


def test_reconnecting_car_replaces_its_old_session():
    async def run():
        state = FleetState("test", max_pending_commands=10)
        old, new = CarSession("car-1", maxsize=8), CarSession("car-1", maxsize=8)
        state.attach(old)
        state.attach(new)
        state.detach(old)  # the old stream ending later must not remove the new session
        return old.closed, state.sessions

    old_closed, sessions = asyncio.run(run())
    assert old_closed
    assert list(sessions) == ["car-1"] and not sessions["car-1"].closed


def test_metrics_interceptor_keeps_coroutine_stream_handlers_and_wraps_each_method_once():
    async def session(request_iterator, context):  # writes with context.write()
        return None

    async def stream(request_iterator, context):  # an async generator handler
        yield b""

    handlers = {
        "/svc/Session": grpc.stream_stream_rpc_method_handler(session),
        "/svc/Stream": grpc.stream_stream_rpc_method_handler(stream),
    }

    class Details:
        def __init__(self, method: str) -> None:
            self.method = method

    async def continuation(details):
        return handlers[details.method]

    async def run():
        interceptor = MetricsInterceptor("test")
        first = await interceptor.intercept_service(continuation, Details("/svc/Session"))
        second = await interceptor.intercept_service(continuation, Details("/svc/Session"))
        streaming = await interceptor.intercept_service(continuation, Details("/svc/Stream"))
        return first, second, streaming

    first, second, streaming = asyncio.run(run())
    assert first is second
    assert inspect.iscoroutinefunction(first.stream_stream)
    assert inspect.isasyncgenfunction(streaming.stream_stream)
