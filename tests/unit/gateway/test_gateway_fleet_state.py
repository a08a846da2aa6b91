"""The gateway's fleet view: which cars get a shadow-mode candidate, and which model line they run."""

from __future__ import annotations

import asyncio

from longtail.common.v1 import common_pb2 as C
from longtail.fleet.v1 import fleet_pb2 as F
from longtail.models.v1 import events_pb2 as M
from longtail.triggers.v1 import events_pb2 as TE
from longtail.triggers.v1 import triggers_pb2 as T

from gateway.fleet_state import CarSession, FleetState, in_shadow_cohort


def published(name, version, role, fraction=0.0):
    return M.ModelPublished(model=C.ModelRef(name=name, version=version), role=role, bucket="b", weights_key=f"models/{name}/{version}/model.pt", sha256="0" * 64, size_bytes=10, shadow_fraction=fraction)


def record(trigger_id, expression, site, state=T.TRIGGER_STATE_ACTIVE, version=1):
    spec = T.TriggerSpec(name=trigger_id, expression=expression, site=site, task="stop_sign", upload_budget=10)
    return TE.TriggerRecord(trigger=T.Trigger(trigger_id=trigger_id, version=version, spec=spec, state=state))


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
        state.on_trigger("t1", record("t1", 'score("occluded") > 0.7', T.TRIGGER_SITE_FLEET))
        detector = published("occluded", 3, C.MODEL_ROLE_TRIGGER_DETECTOR)
        detector.detector_name = "occluded"
        state.on_model("occluded", detector)  # detectors are not a model line: every car gets those in use
        assert [c.update_trigger_model.detector_name for c in sent(session)] == ["occluded"]

    asyncio.run(scenario())


def test_cars_get_only_the_detectors_an_active_trigger_calls():
    async def scenario():
        state = FleetState("t", 10)
        session = CarSession("car-1", 64)
        state.attach(session)
        for name, version in (("old_run", 1), ("occluded", 2)):
            detector = published(name, version, C.MODEL_ROLE_TRIGGER_DETECTOR)
            detector.detector_name = name
            state.on_model(name, detector)
        assert sent(session) == [] and state.welcome_commands(F.Hello(vehicle_id="car-2")) == []  # nothing calls them yet

        state.on_trigger("fleet-side", record("fleet-side", 'score("occluded@2") > 0.7', T.TRIGGER_SITE_FLEET))
        assert [c.update_trigger_model.detector_name for c in sent(session)] == ["occluded"]  # the cars compute the score
        welcome = state.welcome_commands(F.Hello(vehicle_id="car-2"))
        assert [c.update_trigger_model.detector_name for c in welcome] == ["occluded"]  # not old_run
        have = F.Hello(vehicle_id="car-3", trigger_detectors=[C.ModelRef(name="occluded", version=2)])
        assert state.welcome_commands(have) == []

        newer = published("occluded", 3, C.MODEL_ROLE_TRIGGER_DETECTOR)
        newer.detector_name = "occluded"
        state.on_model("occluded", newer)
        assert [c.update_trigger_model.model.version for c in sent(session)] == [3]

        state.on_trigger("fleet-side", record("fleet-side", 'score("occluded@2") > 0.7', T.TRIGGER_SITE_FLEET, T.TRIGGER_STATE_RETIRED, 2))
        assert state.needed_detectors == frozenset() and state.welcome_commands(F.Hello(vehicle_id="car-4")) == []

    asyncio.run(scenario())


def test_an_upload_carries_its_triggers_catalog_priority():
    state = FleetState("t", 10)
    high = record("detector-x", "true", T.TRIGGER_SITE_EDGE)
    high.trigger.spec.priority = 3
    state.on_trigger("detector-x", high)
    state.on_trigger("unsure", record("unsure", "true", T.TRIGGER_SITE_EDGE))
    assert (state.trigger_priority("detector-x"), state.trigger_priority("unsure"), state.trigger_priority("gone")) == (3, 0, 0)
