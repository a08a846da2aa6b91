"""The gateway's fleet view: which cars get a shadow-mode candidate, and which model line they run."""

from __future__ import annotations

import asyncio

from gateway.fleet_state import CarSession, FleetState, in_shadow_cohort
from longtail.common.v1 import common_pb2 as C
from longtail.fleet.v1 import fleet_pb2 as F
from longtail.models.v1 import events_pb2 as M


def published(name, version, role, fraction=0.0):
    return M.ModelPublished(model=C.ModelRef(name=name, version=version), role=role, bucket="b", weights_key=f"models/{name}/{version}/model.pt",
                            sha256="0" * 64, size_bytes=10, shadow_fraction=fraction)


def sent(session):
    out = [F.ServerMessage.FromString(data).command for data in session.outbox]
    session.outbox.clear()
    return out


def test_the_shadow_cohort_is_stable_and_about_the_fraction():
    event = published("perception", 7, C.MODEL_ROLE_CANDIDATE, 0.25)
    cars = [f"car-{i}" for i in range(4000)]
    chosen = [c for c in cars if in_shadow_cohort(c, event)]
    assert 0.22 < len(chosen) / len(cars) < 0.28
    assert chosen == [c for c in cars if in_shadow_cohort(c, event)]
    assert all(in_shadow_cohort(c, published("perception", 7, C.MODEL_ROLE_CANDIDATE, 0.0)) for c in cars[:50])


def test_a_candidate_reaches_its_cohort_now_and_on_reconnect_until_promoted():
    async def scenario():
        state = FleetState("t", 10, fleet_model="perception")
        sessions = {f"car-{i}": CarSession(f"car-{i}", 64) for i in range(200)}
        for s in sessions.values():
            state.attach(s)
        state.on_model("perception", published("perception", 1, C.MODEL_ROLE_PRODUCTION))
        for s in sessions.values():
            assert [c.update_shadow_model.model.version for c in sent(s)] == [1]
        candidate = published("perception", 2, C.MODEL_ROLE_CANDIDATE, 0.5)
        state.on_model("perception", candidate)
        got = {v for v, s in sessions.items() if sent(s)}
        assert got == {v for v in sessions if in_shadow_cohort(v, candidate)} and 60 < len(got) < 140

        inside, outside = sorted(got)[0], sorted(set(sessions) - got)[0]
        hello = F.Hello(vehicle_id=inside, shadow_model=C.ModelRef(name="perception", version=1))
        [cmd] = state.welcome_commands(hello)
        assert cmd.update_shadow_model.role == C.MODEL_ROLE_CANDIDATE and cmd.update_shadow_model.model.version == 2
        hello.candidate_model.CopyFrom(C.ModelRef(name="perception", version=2))
        assert state.welcome_commands(hello) == []
        assert state.welcome_commands(F.Hello(vehicle_id=outside, shadow_model=C.ModelRef(name="perception", version=1))) == []

        state.on_model("perception", published("perception", 2, C.MODEL_ROLE_PRODUCTION))  # promoted
        assert state.candidate_model is None
        hello = F.Hello(vehicle_id=inside, shadow_model=C.ModelRef(name="perception", version=1))
        [cmd] = state.welcome_commands(hello)
        assert cmd.update_shadow_model.role == C.MODEL_ROLE_PRODUCTION and cmd.update_shadow_model.model.version == 2

    asyncio.run(scenario())


def test_other_model_lines_do_not_reach_the_fleet():
    async def scenario():
        state = FleetState("t", 10, fleet_model="perception")
        session = CarSession("car-1", 64)
        state.attach(session)
        state.on_model("experiment", published("experiment", 5, C.MODEL_ROLE_PRODUCTION))
        state.on_model("experiment", published("experiment", 6, C.MODEL_ROLE_CANDIDATE))
        assert sent(session) == [] and state.production_model is None and state.candidate_model is None
        detector = published("occluded", 3, C.MODEL_ROLE_TRIGGER_DETECTOR)
        detector.detector_name = "occluded"
        state.on_model("occluded", detector)  # detectors are not a model line: every car gets them
        assert [c.update_trigger_model.detector_name for c in sent(session)] == ["occluded"]

    asyncio.run(scenario())
