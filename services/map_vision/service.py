"""MapVisionService (gRPC, asyncio): query the map, list recent disagreements, seed the map.

Reads go through `asyncio.to_thread` under the worker's lock (the consumer holds it for one
telemetry record at a time), so a query never blocks the event loop. SeedMap changes the map and
publishes the changed features before answering; it needs an operator token
(`authorization: Bearer <token>`, OPERATOR_TOKEN_SECRET) and is refused when no secret is set.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable

import grpc

from longtail import access
from longtail.grpc_handlers import abort
from longtail.log import get_logger
from longtail.mapvision.v1 import events_pb2, mapvision_pb2, mapvision_pb2_grpc

from map_vision.mapping import KIND_CLASS, InvalidFeature, MapState

log = get_logger(__name__)
MAX_FEATURES_PER_RESPONSE = 20_000  # ~3 MB: under the 8 MB message limit
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000


class RecentDisagreements:
    """Ring buffer of this replica's most recent disagreements (newest first when listed).

    Page tokens are the arrival sequence number to continue below, so pages stay stable while new
    disagreements arrive."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._items: deque[tuple[int, events_pb2.Disagreement]] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()

    def add(self, items) -> None:
        with self._lock:
            for d in items:
                self._seq += 1
                self._items.append((self._seq, d))

    def __len__(self) -> int:
        return len(self._items)

    def page(self, keep: Callable[[events_pb2.Disagreement], bool], before: int | None, limit: int) -> tuple[list, str]:
        with self._lock:
            snapshot = list(self._items)
        out: list[events_pb2.Disagreement] = []
        last_seq = 0
        for seq, d in reversed(snapshot):
            if before is not None and seq >= before:
                continue
            if not keep(d):
                continue
            if len(out) == limit:
                return out, str(last_seq)
            out.append(d)
            last_seq = seq
        return out, ""


def _ns(ts) -> int:
    return ts.seconds * 1_000_000_000 + ts.nanos


class MapVisionServicer(mapvision_pb2_grpc.MapVisionServiceServicer):
    def __init__(self, state: MapState, lock: threading.RLock, recent: RecentDisagreements, publish: Callable[[], Awaitable[None]]) -> None:
        self.state = state
        self.lock = lock
        self.recent = recent
        self.publish = publish

    async def GetMap(self, request: mapvision_pb2.GetMapRequest, context: grpc.aio.ServicerContext) -> mapvision_pb2.GetMapResponse:
        region = None
        if request.HasField("region"):
            r = request.region
            values = (r.x_min, r.y_min, r.x_max, r.y_max)
            if not all(math.isfinite(v) for v in values) or r.x_min > r.x_max or r.y_min > r.y_max:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "region must be finite with x_min <= x_max and y_min <= y_max")
            region = values
        if not 0.0 <= request.min_confidence <= 1.0:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "min_confidence must be in [0, 1]")
        unknown = [k for k in request.kinds if k not in KIND_CLASS]
        if unknown:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"unknown feature kinds {unknown}")

        def query():
            with self.lock:
                found = self.state.query(region, request.kinds, request.min_confidence, request.include_removed)
                if len(found) > MAX_FEATURES_PER_RESPONSE:
                    return None
                return [f.to_proto() for f in found]

        features = await asyncio.to_thread(query)
        if features is None:
            await abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"more than {MAX_FEATURES_PER_RESPONSE} features match: ask for a smaller region")
        response = mapvision_pb2.GetMapResponse(features=features)
        response.as_of.GetCurrentTime()
        return response

    async def GetFeature(self, request: mapvision_pb2.GetFeatureRequest, context: grpc.aio.ServicerContext) -> mapvision_pb2.GetFeatureResponse:
        if not request.feature_id:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "feature_id is required")
        with self.lock:
            f = self.state.get(request.feature_id)
            proto = f.to_proto() if f is not None else None
        if proto is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"no map feature {request.feature_id!r}")
        return mapvision_pb2.GetFeatureResponse(feature=proto)

    async def ListDisagreements(self, request: mapvision_pb2.ListDisagreementsRequest, context: grpc.aio.ServicerContext) -> mapvision_pb2.ListDisagreementsResponse:
        if request.page_size < 0:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
        limit = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = None
        if request.page_token:
            if not request.page_token.isdigit():
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "invalid page_token")
            before = int(request.page_token)
        kinds = set(request.kinds)
        vehicle, feature_id = request.vehicle_id, request.feature_id
        since = _ns(request.time_range.since) if request.time_range.HasField("since") else None
        until = _ns(request.time_range.until) if request.time_range.HasField("until") else None

        def keep(d: events_pb2.Disagreement) -> bool:
            if vehicle and d.vehicle_id != vehicle:
                return False
            if kinds and d.kind not in kinds:
                return False
            if feature_id and d.feature.feature_id != feature_id:
                return False
            if since is not None or until is not None:
                t = _ns(d.observed_at)
                if (since is not None and t < since) or (until is not None and t >= until):
                    return False
            return True

        items, token = await asyncio.to_thread(self.recent.page, keep, before, limit)
        return mapvision_pb2.ListDisagreementsResponse(disagreements=items, next_page_token=token)

    async def SeedMap(self, request: mapvision_pb2.SeedMapRequest, context: grpc.aio.ServicerContext) -> mapvision_pb2.SeedMapResponse:
        operator = access.caller().subject  # an operator (longtail.access; a replica without OPERATOR_TOKEN_SECRET takes no tokens)
        try:
            with self.lock:
                created, updated, removed = self.state.seed(request.features, replace=request.replace, now=time.time())
        except InvalidFeature as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        await self.publish()
        log.info("map seeded", operator=operator, created=created, updated=updated, removed=removed, replace=request.replace)
        return mapvision_pb2.SeedMapResponse(created=created, updated=updated, removed=removed)
