"""One simulated car's link to the fleet gateway: a real gRPC session client.

- Hello with the car's token, software and model versions, and the triggers it runs.
- Telemetry is queued as batches and kept until the gateway acks them (after Kafka did); a
  reconnect resends whatever was not acked (at-least-once; frame ids make duplicates harmless).
- Commands (activate/retire trigger, model updates, upload requests) go to a handler; results
  are reported back so the gateway stops redelivering them.
- Shadow-mode reports (`ShadowDisagreement`) are sent as soon as a session is open; they are
  statistics, not data: at most `max_reports` wait, the oldest are dropped (and counted).
- Reconnects with jittered exponential backoff; memory is bounded (oldest unacked batches are
  dropped past `max_pending`, and counted).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from longtail.common.v1 import common_pb2
from longtail.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from longtail.log import get_logger
from longtail.triggers.v1 import triggers_pb2

log = get_logger(__name__)

CommandHandler = Callable[[fleet_pb2.Command], Awaitable[tuple[bool, str]]]


@dataclass
class LinkStats:
    sessions: int = 0
    batches_acked: int = 0
    frames_acked: int = 0
    frames_rejected: int = 0
    batches_dropped: int = 0
    resent: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    uploads: int = 0
    uploads_existing: int = 0
    shadow_reports: int = 0
    shadow_reports_dropped: int = 0


class CarLink:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        vehicle_id: str,
        token: str,
        on_command: CommandHandler,
        *,
        software_version: str = "sim-1",
        max_pending: int = 512,
        max_inflight: int = 8,
        max_reports: int = 1000,
    ) -> None:
        self.stub = fleet_pb2_grpc.FleetGatewayServiceStub(channel)
        self.vehicle_id = vehicle_id
        self.token = token
        self.on_command = on_command
        self.software_version = software_version
        self.max_pending = max_pending
        self.max_inflight = max_inflight
        self.pending: OrderedDict[int, list[fleet_pb2.Frame]] = OrderedDict()  # local id -> frames, until acked
        self._next_local = 0
        self._wakeup = asyncio.Event()
        self._stopped = asyncio.Event()
        self.connected = asyncio.Event()
        self.limits = fleet_pb2.SessionLimits()
        self.stats = LinkStats()
        self.shadow_model = common_pb2.ModelRef()
        self.candidate_model = common_pb2.ModelRef()
        self.shadow_reports: deque[fleet_pb2.ShadowDisagreement] = deque()
        self.max_reports = max_reports
        self.active_triggers: dict[str, triggers_pb2.Trigger] = {}
        self.detectors: dict[str, common_pb2.ModelRef] = {}
        self.seen_commands: OrderedDict[str, None] = OrderedDict()

    # -- API for the simulation ------------------------------------------------------------
    def submit(self, frames: list[fleet_pb2.Frame]) -> None:
        if not frames:
            return
        self.pending[self._next_local] = frames
        self._next_local += 1
        while len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
            self.stats.batches_dropped += 1
        self._wakeup.set()

    def report_shadow(self, report: fleet_pb2.ShadowDisagreement) -> None:
        self.shadow_reports.append(report)
        while len(self.shadow_reports) > self.max_reports:
            self.shadow_reports.popleft()
            self.stats.shadow_reports_dropped += 1
        self._wakeup.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wakeup.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until every submitted batch was acked and every report sent (or the timeout)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.pending or self.shadow_reports) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not (self.pending or self.shadow_reports)

    async def upload(self, header: fleet_pb2.SnapshotHeader, data: bytes) -> fleet_pb2.UploadSnapshotResponse:
        header.auth_token = self.token
        header.vehicle_id = self.vehicle_id
        header.sha256 = hashlib.sha256(data).hexdigest()
        header.size_bytes = len(data)
        chunk = self.limits.max_chunk_bytes or 256 * 1024

        async def requests():
            yield fleet_pb2.UploadSnapshotRequest(header=header)
            for i in range(0, len(data), chunk):
                yield fleet_pb2.UploadSnapshotRequest(chunk=data[i : i + chunk])

        receipt = await self.stub.UploadSnapshot(requests(), timeout=60)
        self.stats.uploads += 1
        self.stats.uploads_existing += receipt.already_existed
        return receipt

    # -- the session loop ------------------------------------------------------------------
    async def run(self) -> None:
        backoff = 0.2
        while not self._stopped.is_set():
            try:
                await self._session()
                backoff = 0.2
            except grpc.aio.AioRpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                    log.error("gateway refused the car", vehicle=self.vehicle_id, code=exc.code().name, details=exc.details())
                    raise
                self._count(exc.code().name)
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:  # connection trouble: back off and reconnect
                self._count(type(exc).__name__)
            finally:
                self.connected.clear()
            if not self._stopped.is_set():
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 10.0)

    def _count(self, reason: str) -> None:
        self.stats.errors[reason] = self.stats.errors.get(reason, 0) + 1

    def _hello(self) -> fleet_pb2.CarMessage:
        hello = fleet_pb2.Hello(vehicle_id=self.vehicle_id, auth_token=self.token, software_version=self.software_version, shadow_model=self.shadow_model, candidate_model=self.candidate_model)
        for trigger in self.active_triggers.values():
            hello.active_triggers.add(trigger_id=trigger.trigger_id, version=trigger.version)
        hello.trigger_detectors.extend(self.detectors.values())
        return fleet_pb2.CarMessage(hello=hello)

    async def _session(self) -> None:
        outbox: asyncio.Queue[fleet_pb2.CarMessage | None] = asyncio.Queue()
        in_flight: dict[int, int] = {}  # batch_seq -> local id
        window = asyncio.Semaphore(self.max_inflight)
        sent_local: set[int] = set()
        self.stats.sessions += 1

        async def requests():
            yield self._hello()
            while True:
                message = await outbox.get()
                if message is None:
                    return
                yield message

        call = self.stub.Session(requests())

        async def sender():
            seq = 0
            await self.connected.wait()
            while not self._stopped.is_set():
                while self.shadow_reports:
                    outbox.put_nowait(fleet_pb2.CarMessage(shadow_disagreement=self.shadow_reports.popleft()))
                    self.stats.shadow_reports += 1
                todo = [local for local in list(self.pending) if local not in sent_local]
                if not todo:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                for local in todo:
                    if local not in self.pending:
                        continue
                    await window.acquire()
                    seq += 1
                    in_flight[seq] = local
                    sent_local.add(local)
                    outbox.put_nowait(fleet_pb2.CarMessage(telemetry=fleet_pb2.TelemetryBatch(batch_seq=seq, frames=self.pending[local])))
            outbox.put_nowait(fleet_pb2.CarMessage(goodbye=fleet_pb2.Goodbye(reason="shutdown")))
            outbox.put_nowait(None)

        sending = asyncio.create_task(sender())
        try:
            async for message in call:
                kind = message.WhichOneof("payload")
                if kind == "welcome":
                    self.limits = message.welcome.limits
                    self.connected.set()
                elif kind == "ack":
                    local = in_flight.pop(message.ack.batch_seq, None)
                    if local is not None:
                        self.pending.pop(local, None)
                        window.release()
                    self.stats.batches_acked += 1
                    self.stats.frames_acked += message.ack.frames_accepted
                    self.stats.frames_rejected += message.ack.frames_rejected
                elif kind == "error":
                    await self._on_error(message.error, in_flight, sent_local, window)
                elif kind == "command":
                    ok, text = await self._apply(message.command)
                    outbox.put_nowait(fleet_pb2.CarMessage(command_result=fleet_pb2.CommandResult(command_id=message.command.command_id, ok=ok, message=text)))
        finally:
            sending.cancel()
            outbox.put_nowait(None)

    async def _on_error(self, error: fleet_pb2.Error, in_flight: dict[int, int], sent_local: set[int], window: asyncio.Semaphore) -> None:
        self._count(fleet_pb2.ErrorCode.Name(error.code))
        local = in_flight.get(error.batch_seq)
        if error.code in (fleet_pb2.ERROR_CODE_RATE_LIMITED, fleet_pb2.ERROR_CODE_INTERNAL) and local is not None:
            # Not stored: resend after a pause.
            in_flight.pop(error.batch_seq, None)
            window.release()
            await asyncio.sleep(0.5)
            sent_local.discard(local)
            self.stats.resent += 1
            self._wakeup.set()
        elif error.code == fleet_pb2.ERROR_CODE_LIMIT_EXCEEDED and local is not None:
            in_flight.pop(error.batch_seq, None)
            window.release()
            self.pending.pop(local, None)  # can never be accepted as is
            self.stats.batches_dropped += 1
        # INVALID_ARGUMENT is followed by an Ack that counts the rejected frames.

    async def _apply(self, command: fleet_pb2.Command) -> tuple[bool, str]:
        if command.command_id in self.seen_commands:
            return True, "already applied"
        action = command.WhichOneof("action")
        if action == "activate_trigger":
            trigger = command.activate_trigger.trigger
            self.active_triggers[trigger.trigger_id] = trigger
        elif action == "retire_trigger":
            self.active_triggers.pop(command.retire_trigger.trigger_id, None)
        try:
            ok, text = await self.on_command(command)
        except Exception as exc:
            ok, text = False, f"{type(exc).__name__}: {exc}"
        if ok:
            if action == "update_shadow_model":
                update = command.update_shadow_model
                if update.role == common_pb2.MODEL_ROLE_CANDIDATE:
                    self.candidate_model = update.model
                else:
                    self.shadow_model = update.model
                    if (self.candidate_model.name, self.candidate_model.version) == (update.model.name, update.model.version):
                        self.candidate_model = common_pb2.ModelRef()  # promoted
            elif action == "update_trigger_model":
                self.detectors[command.update_trigger_model.detector_name] = command.update_trigger_model.model
            self.seen_commands[command.command_id] = None
            while len(self.seen_commands) > 1000:
                self.seen_commands.popitem(last=False)
        return ok, text
