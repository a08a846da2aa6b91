"""A simulated car's upload: retried with backoff when the gateway is busy or restarting
(content-addressed, so a retry stores nothing twice), given up and counted after a few attempts or
at once on an error that a retry cannot fix."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from longtail.fleet.v1 import fleet_pb2 as F
from longtail.model.network import MultiTaskNet
from longtail.synthetic.world import World, WorldConfig
from longtail.tasks import DEFAULT_TASKS
from longtail.triggers.v1 import triggers_pb2 as S

from fleet_sim import fleet as fleet_mod
from fleet_sim.fleet import PendingUpload, SimCar, SimConfig, SimulatedFleet


class FlakyLink:
    def __init__(self, failures: list[grpc.StatusCode]) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def upload(self, header, data):
        self.calls += 1
        if self.failures:
            code = self.failures.pop(0)
            raise grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"{code.name} (test)")
        return F.UploadSnapshotResponse(snapshot_id="abc", already_existed=False)


def upload_with(failures: list[grpc.StatusCode]):
    fleet = SimulatedFleet(SimConfig(cars=1), World(WorldConfig(), seed=0), MultiTaskNet(DEFAULT_TASKS, channels=(4, 8, 8, 8)).eval())
    link = FlakyLink(failures)
    car = SimCar("car-1", None, None, link)
    frame = F.Frame(frame_id="f1", sequence=1)
    pending = PendingUpload(1, frame, S.Trigger(trigger_id="t1", version=1), "fire-1", 0, 0)

    async def go():
        fleet._upload_slots = asyncio.Semaphore(2)
        await fleet._upload(car, pending, [(frame, np.zeros((8, 8, 3), np.uint8), [])])

    asyncio.run(go())
    return fleet.report, link


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(fleet_mod, "UPLOAD_BACKOFF_S", 0.0)


def test_a_busy_gateway_gets_the_upload_on_a_later_attempt():
    report, link = upload_with([grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE])
    assert link.calls == 3 and report.uploads == 1 and report.upload_retries == 2 and report.upload_errors == 0
    assert report.uploads_by_trigger == {"t1": 1} and report.snapshot_ids == {"abc": "t1"}


def test_the_car_gives_up_after_its_attempts_and_counts_the_error():
    report, link = upload_with([grpc.StatusCode.RESOURCE_EXHAUSTED] * fleet_mod.UPLOAD_ATTEMPTS)
    assert link.calls == fleet_mod.UPLOAD_ATTEMPTS and report.uploads == 0 and report.upload_errors == 1


def test_an_error_a_retry_cannot_fix_is_not_retried():
    report, link = upload_with([grpc.StatusCode.INVALID_ARGUMENT])
    assert link.calls == 1 and report.upload_errors == 1 and report.upload_retries == 0


class _Link:
    def __init__(self, vehicle_id: str, errors: dict[str, int]) -> None:
        self.vehicle_id, self.connected, self.stats = vehicle_id, asyncio.Event(), type("Stats", (), {"errors": errors})()


def test_cars_without_a_session_give_a_clear_error_naming_what_they_met():
    fleet = SimulatedFleet(SimConfig(cars=2, plaintext=True), World(WorldConfig(), seed=0), MultiTaskNet(DEFAULT_TASKS, channels=(4, 8, 8, 8)).eval(), gateway_address="127.0.0.1:1")
    links = [_Link("car-a", {"UNAVAILABLE": 3}), _Link("car-b", {"UNAVAILABLE": 2})]
    links[0].connected.set()

    async def connect():
        forever = asyncio.create_task(asyncio.sleep(60))
        try:
            await fleet._connected(links, [forever], timeout_s=0.2)
        finally:
            forever.cancel()

    with pytest.raises(TimeoutError, match=r"1 of 2 cars had no session with 127.0.0.1:1 .*'car-b'.*'UNAVAILABLE': 5.*tls_dir"):
        asyncio.run(connect())


def test_a_car_the_gateway_refused_fails_the_run_at_once():
    fleet = SimulatedFleet(SimConfig(cars=1), World(WorldConfig(), seed=0), MultiTaskNet(DEFAULT_TASKS, channels=(4, 8, 8, 8)).eval())

    async def refused():
        raise PermissionError("certificate of another car")

    async def connect():
        task = asyncio.create_task(refused())
        await asyncio.sleep(0)
        await fleet._connected([_Link("car-a", {})], [task], timeout_s=30)

    with pytest.raises(PermissionError, match="another car"):
        asyncio.run(connect())
