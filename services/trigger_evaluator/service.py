"""TriggerCatalogService: the catalog API (operator-authenticated writes), backtests and yield."""

from __future__ import annotations

import asyncio
import time

import grpc

from longtail import access, topics
from longtail.grpc_handlers import abort
from longtail.kafka import DeliveryError, Producer, read_time_range
from longtail.log import get_logger
from longtail.storage import ObjectStore
from longtail.triggerlang import FiringOptions, TriggerSyntaxError, compile_trigger
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2 as S
from longtail.triggers.v1 import triggers_pb2_grpc

from trigger_evaluator.backtest import read_segment, run_backtest
from trigger_evaluator.catalog import Catalog, CatalogError, validate_spec
from trigger_evaluator.ledger import YieldLedger

log = get_logger(__name__)


class TriggerCatalog(triggers_pb2_grpc.TriggerCatalogServiceServicer):
    def __init__(self, catalog: Catalog, ledger: YieldLedger, producer: Producer, bootstrap: str, store: ObjectStore | None, map_view=None) -> None:
        self.catalog = catalog
        self.map_view = map_view  # fleet_worker.MapView: backtests of map_disagreement() see the current map
        self.ledger = ledger
        self.producer = producer
        self.bootstrap = bootstrap
        self.store = store
        self._write_lock = asyncio.Lock()  # serialise read-modify-write of the catalog in this replica

    async def _operator(self, context) -> str:
        """Who changes the catalog (longtail.access checked their role before the call)."""
        return access.caller().subject

    async def _fail(self, context, exc: CatalogError) -> None:
        await abort(context, getattr(grpc.StatusCode, exc.code), str(exc))

    async def publish(self, trigger: S.Trigger) -> None:
        """Write to the compacted topic (acked), then to this replica's view."""
        await self.producer.produce_and_wait(topics.TRIGGER_CATALOG, trigger.trigger_id, trigger_events.TriggerRecord(trigger=trigger))
        self.catalog.apply(trigger.trigger_id, trigger)

    async def _write(self, context, change) -> S.Trigger:
        async with self._write_lock:
            try:
                trigger = change()
            except CatalogError as exc:
                await self._fail(context, exc)
            current = self.catalog.latest.get(trigger.trigger_id)
            if current is not trigger:
                try:
                    await self.publish(trigger)
                except DeliveryError as exc:
                    await abort(context, grpc.StatusCode.UNAVAILABLE, f"catalog not written, retry: {exc}")
            return trigger

    # -- writes ----------------------------------------------------------------------------------
    async def CreateTrigger(self, request, context):
        operator = await self._operator(context)
        existed = {}

        def change():
            trigger, already = self.catalog.create(request.trigger_id, request.spec, operator)
            existed["v"] = already
            return trigger

        trigger = await self._write(context, change)
        log.info("trigger created", trigger=trigger.trigger_id, operator=operator, existed=existed["v"])
        return S.CreateTriggerResponse(trigger=trigger, already_existed=existed["v"])

    async def UpdateTrigger(self, request, context):
        operator = await self._operator(context)
        trigger = await self._write(context, lambda: self.catalog.update(request.trigger_id, request.spec, request.expected_version, operator))
        return S.UpdateTriggerResponse(trigger=trigger)

    async def ActivateTrigger(self, request, context):
        operator = await self._operator(context)
        trigger = await self._write(context, lambda: self.catalog.transition(request.trigger_id, S.TRIGGER_STATE_ACTIVE, "", operator, request.expected_version))
        return S.ActivateTriggerResponse(trigger=trigger)

    async def PauseTrigger(self, request, context):
        operator = await self._operator(context)
        trigger = await self._write(context, lambda: self.catalog.transition(request.trigger_id, S.TRIGGER_STATE_PAUSED, request.reason, operator))
        return S.PauseTriggerResponse(trigger=trigger)

    async def RetireTrigger(self, request, context):
        operator = await self._operator(context)
        trigger = await self._write(context, lambda: self.catalog.transition(request.trigger_id, S.TRIGGER_STATE_RETIRED, request.reason, operator))
        return S.RetireTriggerResponse(trigger=trigger)

    # -- reads -----------------------------------------------------------------------------------
    async def ValidateTrigger(self, request, context):
        spec = S.TriggerSpec()
        spec.CopyFrom(request.spec)
        if request.expression:
            spec.expression = request.expression
        if request.HasField("spec"):
            errors, detectors = validate_spec(spec)
        else:  # expression only
            errors, detectors = [], []
            try:
                detectors = sorted(compile_trigger(spec.expression).required_detectors)
            except TriggerSyntaxError as exc:
                errors.append(S.ValidationError(line=exc.line, column=exc.column, message=exc.message, snippet=exc.snippet, field="expression"))
        return S.ValidateTriggerResponse(ok=not errors, errors=errors, referenced_detectors=detectors)

    async def GetTrigger(self, request, context):
        try:
            return S.GetTriggerResponse(trigger=self.catalog.get(request.trigger_id, request.version))
        except CatalogError as exc:
            await self._fail(context, exc)

    async def ListTriggers(self, request, context):
        triggers = self.catalog.list(list(request.states))
        start = int(request.page_token) if request.page_token.isdigit() else 0
        size = request.page_size if request.page_size > 0 else 100
        page = triggers[start : start + size]
        token = str(start + size) if start + size < len(triggers) else ""
        return S.ListTriggersResponse(triggers=page, next_page_token=token)

    async def GetYield(self, request, context):
        if request.trigger_id:
            try:
                triggers = [self.catalog.get(request.trigger_id)]
            except CatalogError as exc:
                await self._fail(context, exc)
        else:
            triggers = self.catalog.list()
        yields = []
        for trigger in triggers:
            versions = sorted({v for (tid, v) in self.ledger.counts if tid == trigger.trigger_id} | {trigger.version})
            for version in versions:
                yields.append(self.ledger.report(trigger.trigger_id, version, trigger.spec.upload_budget))
        return S.GetYieldResponse(yields=yields)

    async def BacktestTrigger(self, request, context):
        if request.HasField("trigger"):
            try:
                stored = self.catalog.get(request.trigger.trigger_id, request.trigger.version)
            except CatalogError as exc:
                await self._fail(context, exc)
            spec, trigger_id, version = stored.spec, stored.trigger_id, stored.version
        elif request.HasField("spec"):
            spec, trigger_id, version = request.spec, "backtest", 0
        else:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "name a stored trigger or give a spec")
        try:
            compiled = compile_trigger(spec.expression, FiringOptions.from_spec(spec), trigger_id, version)
        except (TriggerSyntaxError, ValueError) as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"expression: {exc}")
        source = request.WhichOneof("source")
        if source == "time_range":
            since = request.time_range.since.ToMilliseconds() if request.time_range.HasField("since") else 0
            until = request.time_range.until.ToMilliseconds() if request.time_range.HasField("until") else int(time.time() * 1000) + 1
            if until <= since:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "time_range.until must be after time_range.since")
            batches = lambda: read_time_range(self.bootstrap, topics.TELEMETRY, since, until)  # noqa: E731
        elif source == "segment_key":
            if self.store is None:
                await abort(context, grpc.StatusCode.FAILED_PRECONDITION, "no object store configured")
            try:
                data = await asyncio.to_thread(self.store.get, request.segment_key)
            except Exception as exc:
                await abort(context, grpc.StatusCode.NOT_FOUND, f"segment {request.segment_key!r}: {exc}")
            batches = lambda: read_segment(data)  # noqa: E731
        else:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "give a time_range or a segment_key")
        try:
            map_context = self.map_view.context if self.map_view is not None and compiled.uses_map else None
            return await asyncio.to_thread(lambda: run_backtest(compiled, spec, batches(), request.sample_limit, request.max_frames, map_context))
        except ValueError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
