"""What the gateway knows about the fleet, rebuilt from Kafka on every replica (stateless service):

- the trigger catalog (compacted triggers.catalog.v1), the current production model and trigger
  detectors (models.published.v1), and commands for cars (fleet.vehicle-commands.v1), each read
  from the beginning by every replica, so any replica can serve any car;
- which detectors the cars need: those an ACTIVE trigger (any site: a fleet-side trigger reads the
  score the car computes) calls with score()/has_score(). Detectors nothing uses any more are not
  sent, so a long history of published detectors does not land on every car that connects;
- the sessions connected to *this* replica, each with a bounded outbound queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable

from prometheus_client import Gauge

from longtail import topics
from longtail.common.v1 import common_pb2
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.fleet.v1 import fleet_pb2
from longtail.log import get_logger
from longtail.models.v1 import events_pb2 as model_events
from longtail.triggerlang import compile_trigger
from longtail.triggers.v1 import triggers_pb2

log = get_logger(__name__)

CONNECTED = Gauge("longtail_gateway_connected_cars", "Cars with an open session on this replica", ["service"])
ACTIVE_TRIGGERS = Gauge("longtail_gateway_active_edge_triggers", "Edge triggers beamed to cars", ["service"])

EDGE_SITES = (triggers_pb2.TRIGGER_SITE_EDGE, triggers_pb2.TRIGGER_SITE_BOTH)


def runs_on_cars(trigger: triggers_pb2.Trigger) -> bool:
    return trigger.state == triggers_pb2.TRIGGER_STATE_ACTIVE and trigger.spec.site in EDGE_SITES


def activate_command(trigger: triggers_pb2.Trigger) -> fleet_pb2.Command:
    cmd = fleet_pb2.Command(command_id=f"activate/{trigger.trigger_id}/{trigger.version}")
    cmd.issued_at.GetCurrentTime()
    cmd.activate_trigger.trigger.CopyFrom(trigger)
    return cmd


def retire_command(trigger_id: str, reason: str) -> fleet_pb2.Command:
    cmd = fleet_pb2.Command(command_id=f"retire/{trigger_id}/{uuid.uuid4().hex[:8]}")
    cmd.issued_at.GetCurrentTime()
    cmd.retire_trigger.trigger_id = trigger_id
    cmd.retire_trigger.reason = reason
    return cmd


def model_command(event: model_events.ModelPublished) -> fleet_pb2.Command:
    role = event.role
    cmd = fleet_pb2.Command(command_id=f"model/{common_pb2.ModelRole.Name(role)}/{event.model.name}/{event.model.version}")
    cmd.issued_at.GetCurrentTime()
    uri = f"s3://{event.bucket}/{event.weights_key}" if event.weights_key else ""
    if role == common_pb2.MODEL_ROLE_TRIGGER_DETECTOR:
        cmd.update_trigger_model.CopyFrom(fleet_pb2.UpdateTriggerModel(detector_name=event.detector_name or event.model.name, model=event.model, uri=uri, sha256=event.sha256, size_bytes=event.size_bytes))
    else:
        cmd.update_shadow_model.CopyFrom(fleet_pb2.UpdateShadowModel(model=event.model, role=role, uri=uri, sha256=event.sha256, size_bytes=event.size_bytes))
    return cmd


def in_shadow_cohort(vehicle_id: str, event: model_events.ModelPublished) -> bool:
    """Whether this car runs the candidate `event` in shadow mode: a stable hash of car and model
    version below `shadow_fraction` (0 = every car), so a reconnecting car stays in its cohort."""
    fraction = event.shadow_fraction
    if fraction <= 0.0 or fraction >= 1.0:
        return True
    digest = hashlib.sha256(f"{vehicle_id}/{event.model.name}/{event.model.version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class CarSession:
    """One connected car. Outbound messages wait, serialized, in a bounded outbox for the session's
    writer: a car that stops reading is disconnected (it reconnects and gets the current state)
    instead of growing memory. A plain list and one future while idle: with 10,000 cars connected,
    every object per session counts (memory, and the garbage collector walks them all)."""

    __slots__ = ("vehicle_id", "session_id", "maxsize", "outbox", "waiter", "closed", "overflowed", "revoked")

    def __init__(self, vehicle_id: str, maxsize: int) -> None:
        self.vehicle_id = vehicle_id
        self.session_id = uuid.uuid4().hex
        self.maxsize = maxsize
        self.outbox: list[bytes] = []
        self.waiter: asyncio.Future | None = None  # the writer's, while it waits for a message
        self.closed = False
        self.overflowed = False
        self.revoked = False

    def offer(self, message: fleet_pb2.ServerMessage) -> bool:
        return self.offer_serialized(message.SerializeToString())

    def offer_serialized(self, data: bytes) -> bool:
        """Queue a serialized ServerMessage (a broadcast serializes once for every car)."""
        if self.closed:
            return False
        if len(self.outbox) >= self.maxsize:
            self.overflowed = True
            self.close()
            return False
        self.outbox.append(data)
        self._wake()
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> bytes | None:
        """The next message to write; None once the session is closed and what was queued before
        is written (a car that overflowed gets nothing more: it has to reconnect anyway)."""
        while not self.outbox or self.overflowed:
            if self.closed:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.outbox.pop(0)


class FleetState:
    def __init__(self, service: str, max_pending_commands: int, fleet_model: str = "") -> None:
        self.service = service
        self.fleet_model = fleet_model  # the model line the cars run; "" = any (the last published)
        self.triggers: dict[str, triggers_pb2.Trigger] = {}
        self.production_model: model_events.ModelPublished | None = None
        self.candidate_model: model_events.ModelPublished | None = None  # in shadow mode beside production
        self.detectors: dict[str, model_events.ModelPublished] = {}  # newest version by detector name
        self.needed_detectors: frozenset[str] = frozenset()  # names the active triggers call
        self._uses: dict[str, frozenset[str]] = {}  # active trigger id -> the detector names it calls
        self.pending: dict[str, OrderedDict[str, fleet_events.VehicleCommand]] = {}
        self.max_pending = max_pending_commands
        self.sessions: dict[str, CarSession] = {}
        self.connected = CONNECTED.labels(service)
        self.active_gauge = ACTIVE_TRIGGERS.labels(service)

    # -- sessions ------------------------------------------------------------------------------
    def attach(self, session: CarSession) -> None:
        old = self.sessions.get(session.vehicle_id)
        if old is not None:  # a car reconnecting before its old stream noticed: one session per car
            old.close()
        self.sessions[session.vehicle_id] = session
        self.connected.set(len(self.sessions))

    def detach(self, session: CarSession) -> None:
        if self.sessions.get(session.vehicle_id) is session:
            del self.sessions[session.vehicle_id]
        self.connected.set(len(self.sessions))

    def revoke(self, vehicle_ids) -> int:
        """Close the sessions of revoked cars; how many were open."""
        closed = 0
        for vehicle_id in vehicle_ids:
            session = self.sessions.get(vehicle_id)
            if session is not None:
                session.revoked = True
                session.close()
                closed += 1
        return closed

    def broadcast(self, command: fleet_pb2.Command) -> int:
        data = fleet_pb2.ServerMessage(command=command).SerializeToString()  # once, not once per car
        return sum(session.offer_serialized(data) for session in list(self.sessions.values()))

    def welcome_commands(self, hello: fleet_pb2.Hello) -> list[fleet_pb2.Command]:
        """Commands that bring a (re)connecting car up to date with the current state."""
        commands = []
        has = {(t.trigger_id, t.version) for t in hello.active_triggers}
        wanted = {tid: t for tid, t in self.triggers.items() if runs_on_cars(t)}
        for trigger in wanted.values():
            if (trigger.trigger_id, trigger.version) not in has:
                commands.append(activate_command(trigger))
        for ref in hello.active_triggers:
            if ref.trigger_id not in wanted:
                commands.append(retire_command(ref.trigger_id, "no longer active"))
        prod = self.production_model
        if prod is not None and (hello.shadow_model.name, hello.shadow_model.version) != (prod.model.name, prod.model.version):
            commands.append(model_command(prod))
        cand = self.candidate_model
        if cand is not None and in_shadow_cohort(hello.vehicle_id, cand) and (hello.candidate_model.name, hello.candidate_model.version) != (cand.model.name, cand.model.version):
            commands.append(model_command(cand))
        car_detectors = {(m.name, m.version) for m in hello.trigger_detectors}
        for name in self.needed_detectors:
            event = self.detectors.get(name)
            if event is not None and (event.model.name, event.model.version) not in car_detectors:
                commands.append(model_command(event))
        now = time.time()
        for vc in self.pending.get(hello.vehicle_id, {}).values():
            if not vc.HasField("expires_at") or vc.expires_at.ToSeconds() > now:
                commands.append(vc.command)
        return commands

    # -- Kafka-fed updates (called on the event loop) ---------------------------------------
    def trigger_priority(self, trigger_id: str) -> int:
        """The catalog priority of a trigger (0 if unknown): uploads carry it to the label queues."""
        trigger = self.triggers.get(trigger_id)
        return int(trigger.spec.priority) if trigger is not None else 0

    def on_trigger(self, key: str | None, record) -> None:
        if record is None:  # tombstone
            old = self.triggers.pop(key or "", None)
            if old is not None and runs_on_cars(old):
                self.broadcast(retire_command(old.trigger_id, "deleted"))
        else:
            trigger = record.trigger
            old = self.triggers.get(trigger.trigger_id)
            if old is not None and old.version > trigger.version:
                return  # an older version replayed after a newer one: ignore
            self.triggers[trigger.trigger_id] = trigger
            if runs_on_cars(trigger):
                if old is None or not runs_on_cars(old) or old.version != trigger.version:
                    self.broadcast(activate_command(trigger))
            elif old is not None and runs_on_cars(old):
                reason = trigger.state_reason or triggers_pb2.TriggerState.Name(trigger.state)
                self.broadcast(retire_command(trigger.trigger_id, reason))
        self.active_gauge.set(sum(runs_on_cars(t) for t in self.triggers.values()))
        self._update_detector_uses(key or "", None if record is None else record.trigger)

    def _update_detector_uses(self, trigger_id: str, trigger: triggers_pb2.Trigger | None) -> None:
        """Which detectors the cars need after this catalog record (one trigger's entry changes)."""
        uses: frozenset[str] = frozenset()
        if trigger is not None and trigger.state == triggers_pb2.TRIGGER_STATE_ACTIVE:
            try:  # "name@3" and "name" both need the detector "name" (the cars run its newest version)
                uses = frozenset(k.split("@", 1)[0] for k in compile_trigger(trigger.spec.expression).required_detectors)
            except ValueError:  # the catalog validated it; a newer language might not
                pass
            trigger_id = trigger.trigger_id
        if self._uses.get(trigger_id, frozenset()) == uses:
            return
        if uses:
            self._uses[trigger_id] = uses
        else:
            self._uses.pop(trigger_id, None)
        needed = frozenset().union(*self._uses.values())
        for name in sorted(needed - self.needed_detectors):
            if name in self.detectors:  # published before its first trigger: the cars get it now
                self.broadcast(model_command(self.detectors[name]))
        self.needed_detectors = needed

    def on_model(self, _key: str | None, event: model_events.ModelPublished | None) -> None:
        if event is None:
            return
        perception = event.role in (common_pb2.MODEL_ROLE_PRODUCTION, common_pb2.MODEL_ROLE_CANDIDATE)
        if perception and self.fleet_model and event.model.name != self.fleet_model:
            return  # another model line (e.g. an experiment): not for this fleet
        if event.role == common_pb2.MODEL_ROLE_PRODUCTION:
            current = self.production_model
            if current is None or current.model.name != event.model.name or current.model.version != event.model.version:
                self.production_model = event
                cand = self.candidate_model
                if cand is not None and (cand.model.name, cand.model.version) == (event.model.name, event.model.version):
                    self.candidate_model = None  # promoted: the cars stop comparing it with itself
                self.broadcast(model_command(event))
        elif event.role == common_pb2.MODEL_ROLE_TRIGGER_DETECTOR:
            name = event.detector_name or event.model.name
            current = self.detectors.get(name)
            if current is None or current.model.version < event.model.version:
                self.detectors[name] = event
                if name in self.needed_detectors:
                    self.broadcast(model_command(event))
        elif event.role == common_pb2.MODEL_ROLE_CANDIDATE:
            current = self.candidate_model
            if current is None or (current.model.name, current.model.version) != (event.model.name, event.model.version):
                self.candidate_model = event
                data = fleet_pb2.ServerMessage(command=model_command(event)).SerializeToString()  # once for the cohort
                for session in list(self.sessions.values()):
                    if in_shadow_cohort(session.vehicle_id, event):
                        session.offer_serialized(data)

    def on_vehicle_command(self, _key: str | None, vc: fleet_events.VehicleCommand | None) -> None:
        if vc is None or not vc.vehicle_id:
            return
        if vc.HasField("expires_at") and vc.expires_at.ToSeconds() <= time.time():
            return
        queue = self.pending.setdefault(vc.vehicle_id, OrderedDict())
        queue[vc.command.command_id] = vc
        while len(queue) > self.max_pending:
            queue.popitem(last=False)
        session = self.sessions.get(vc.vehicle_id)
        if session is not None:
            session.offer(fleet_pb2.ServerMessage(command=vc.command))

    def on_command_result(self, vehicle_id: str, result: fleet_pb2.CommandResult) -> None:
        queue = self.pending.get(vehicle_id)
        if queue is not None:
            queue.pop(result.command_id, None)
            if not queue:
                del self.pending[vehicle_id]


def follower_handlers(state: FleetState) -> dict[topics.Topic, Callable]:
    return {topics.TRIGGER_CATALOG: state.on_trigger, topics.MODELS_PUBLISHED: state.on_model, topics.VEHICLE_COMMANDS: state.on_vehicle_command}


def all_topics() -> Iterable[topics.Topic]:
    return (topics.TELEMETRY, topics.SNAPSHOTS, topics.SHADOW_DISAGREEMENTS, topics.TRIGGER_CATALOG, topics.MODELS_PUBLISHED, topics.VEHICLE_COMMANDS)
