"""Fuzzing every entry point (issue #18): every gRPC method of every service, running as its own
process on TLS (`demo.stack.Stack`: the label store, the trigger catalog, the trainer, map-vision,
the gateway and inference on Triton), gets random valid-shaped messages (hypothesis strategies
from the descriptors, tests/integration/fuzzing.py) and random bytes on the wire, with a token of
a role the method admits, so the handlers themselves are reached. Expected of every call: an
answer within its deadline (no hang) whose status says the input was wrong, with a reason
(`INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`, `RESOURCE_EXHAUSTED`, and for
well-formed requests about things that are not there or not in that state `NOT_FOUND`,
`ALREADY_EXISTS`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `ABORTED`), or OK; never `UNKNOWN` or
`INTERNAL`; and every service still alive and serving at the end. Each Kafka consumer is then
fed random bytes and messages of the wrong type on every topic it reads: it dead-letters them
and keeps going. The number of inputs tried per entry point is printed (`-s`) and in
docs/security.md. LONGTAIL_FUZZ_EXAMPLES sets the number of examples per method and kind (100).

Side effects stay in the fuzz run: the label store has its own database; trigger ids are
prefixed `fuzz-` (any left active are retired at the end); SeedMap never replaces the map and
puts its features far outside the simulated world (the map topic is shared with later tests);
a run StartRun accepts names a dataset that does not exist (trainers resume the queued runs they
find in the bucket, so a later test's trainer would otherwise train it). At the end no run of
the fuzz run may be left queued or running."""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter, defaultdict

import grpc
import pytest
from fuzzing import messages
from google.protobuf import descriptor_pool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from longtail import access, registry, topics
from longtail.auth import issue_token
from longtail.fleet.v1 import fleet_pb2
from longtail.triggers.v1 import triggers_pb2 as S

EXAMPLES = int(os.environ.get("LONGTAIL_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck), derandomize=True)
WRONG_INPUT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.ABORTED,
}
CALL_TIMEOUT_S = 30.0
SERVICES = {  # process name in the stack -> its registry entry
    "label-store": registry.LABEL_STORE,
    "trigger-evaluator": registry.TRIGGER_EVALUATOR,
    "trainer": registry.TRAINER,
    "map-vision": registry.MAP_VISION,
    "gateway": registry.GATEWAY,
    "inference": registry.INFERENCE,
}
CAR = f"fuzz-car-{uuid.uuid4().hex[:6]}"
TRIED: dict[str, Counter] = defaultdict(Counter)  # method -> kind of input -> calls
ANSWERS: dict[str, Counter] = defaultdict(Counter)  # method -> status -> calls


def _methods() -> list[tuple[str, object]]:
    pool = descriptor_pool.Default()
    return [(name, method) for name, service in SERVICES.items() for method in pool.FindServiceByName(service.grpc).methods]


@pytest.fixture(scope="module")
def stack(kafka, s3, triton):
    from longtail.common.v1 import common_pb2 as C
    from longtail.model import torchscript
    from longtail.models.v1 import trainer_pb2 as T

    from demo.stack import Stack
    from fleet_sim.bootstrap import train_bootstrap_model
    from map_vision.seed import simulator_map, write_seed_file

    run = uuid.uuid4().hex[:6]
    line = f"fuzz-{run}"
    s = Stack(line, say=print, manage_infra=False, prometheus=False)
    s.state.mkdir(parents=True, exist_ok=True)
    s.configure(fleet_model=line, seed_map=write_seed_file(simulator_map(world_seed=1), s.state / "seed-map.json"))
    try:
        for name in ("label-store", "trigger-evaluator", "trainer", "map-vision"):
            s.start(name)
        s.clients()
        model = train_bootstrap_model(seed=3)
        s.trainer.ImportModel(T.ImportModelRequest(model_name=line, weights=torchscript.to_bytes(model.eval()), role=C.MODEL_ROLE_PRODUCTION, reason="fuzz baseline"), metadata=s.auth, timeout=120)
        s.start("gateway", GATEWAY_FLEET_MODEL=line)
        s.start("inference", INFERENCE_MODEL_NAME=line)
        yield s
        _wait_for_no_queued_runs(s)
    finally:
        _retire_fuzz_triggers(s)
        _report()
        s.stop(keep_infra=True)


def _wait_for_no_queued_runs(s, patience_s: float = 120.0) -> None:
    """Every run the fuzzing queued fails fast (no dataset): none may be left for another trainer."""
    from longtail.models.v1 import trainer_pb2 as T

    waiting = {T.RUN_STATUS_QUEUED, T.RUN_STATUS_RUNNING}
    deadline = time.monotonic() + patience_s
    while True:
        runs = s.trainer.ListRuns(T.ListRunsRequest(page_size=1000), timeout=30).runs
        left = [r.run_id for r in runs if r.status in waiting and any(d.name.startswith("fuzz-no-such-dataset-") for d in r.spec.datasets)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert not left, f"fuzzed runs still queued or running after {patience_s:.0f}s: {left[:5]}"


def _retire_fuzz_triggers(s) -> None:
    try:
        listed = s.catalog.ListTriggers(S.ListTriggersRequest(states=[S.TRIGGER_STATE_ACTIVE, S.TRIGGER_STATE_PAUSED], page_size=1000), timeout=30).triggers
        for t in listed:
            if t.trigger_id.startswith("fuzz-"):
                s.catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=t.trigger_id, reason="fuzzing done"), metadata=s.auth, timeout=10)
    except Exception as exc:  # noqa: BLE001 - best effort; reported
        print(f"fuzz: could not retire fuzz triggers: {exc}")


def _report() -> None:
    if not TRIED:
        return
    print("\nfuzzed entry points: inputs tried (valid-shaped / random bytes / streams) and the answers")
    for method in sorted(TRIED):
        tried, answers = TRIED[method], ANSWERS[method]
        print(f"  {method:<62} {tried['message']:>4} / {tried['bytes']:>4} / {tried['stream']:>4}   " + ", ".join(f"{code} {n}" for code, n in answers.most_common()))
    print(f"  total: {sum(sum(c.values()) for c in TRIED.values())} calls on {len(TRIED)} methods")


def _metadata(s, rule: access.Rule) -> list[tuple[str, str]]:
    if rule.car:
        return []
    role = next((r for r in (access.OPERATOR, access.REVIEWER, access.LABELLER, access.SERVICE) if r in rule.roles), access.OPERATOR)
    return s.token_metadata(f"fuzzer-{role}", role)


def _channel(s, name: str) -> grpc.Channel:
    if name == "gateway":  # a car's certificate: the gateway requires one
        from fleet_sim.fleet import car_credentials

        return grpc.secure_channel(s.processes[name].address, car_credentials(s.pki, CAR))
    return grpc.secure_channel(s.processes[name].address, s.credentials)


def _contained(method, message):
    """What keeps a valid random request from changing what later tests share."""
    if method.containing_service.full_name == registry.TRIGGER_EVALUATOR.grpc and "trigger_id" in message.DESCRIPTOR.fields_by_name:
        message.trigger_id = "fuzz-" + message.trigger_id
    if method.name == "SeedMap":
        message.replace = False
        for feature in message.features:
            feature.feature_id = "fuzz-" + feature.feature_id
            feature.x, feature.y = feature.x + 1e7, feature.y + 1e7
    if method.name == "StartRun":
        # A run the trainer accepts is queued and kept in the shared bucket, where a later test's
        # trainer would resume it: its only dataset does not exist, so it fails at once, untrained.
        message.spec.ClearField("datasets")
        message.spec.datasets.add(name=f"fuzz-no-such-dataset-{uuid.uuid4().hex[:6]}", version=1)
    if method.name in ("PublishTelemetry",) and message.vehicle_id:
        message.vehicle_id = CAR  # a car may speak for itself only: let the handler get past that
    return message


def _check(path: str, kind: str, call) -> None:
    TRIED[path][kind] += 1
    try:
        call()
        ANSWERS[path]["OK"] += 1
        return
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    ANSWERS[path][code.name] += 1
    assert code in WRONG_INPUT, f"{path} ({kind}): {code.name}: {details}"
    assert details.strip(), f"{path} ({kind}): {code.name} without a reason"


@pytest.mark.parametrize(("service", "method"), _methods(), ids=lambda v: getattr(v, "name", v))
def test_every_method_answers_bad_input_with_a_precise_status(stack, service, method):
    path = f"/{method.containing_service.full_name}/{method.name}"
    rule = access.POLICY[path]
    channel = _channel(stack, service)
    metadata = _metadata(stack, rule)
    fleet_token = issue_token(CAR, stack.fleet_secret)
    request_class = messages(method.input_type)
    try:
        if method.client_streaming:
            stream = (
                channel.stream_stream(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=bytes)
                if method.server_streaming
                else channel.stream_unary(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=bytes)
            )

            @FUZZ
            @given(st.lists(request_class, min_size=1, max_size=4), st.booleans())
            def streams(requests, authenticated):
                first = requests[0]
                if authenticated and method.name == "Session":  # a real hello first: the session's own handling is fuzzed
                    requests = [fleet_pb2.CarMessage(hello=fleet_pb2.Hello(vehicle_id=CAR, auth_token=fleet_token, software_version="fuzz")), *requests]
                elif authenticated and method.name == "UploadSnapshot" and first.HasField("header"):
                    first.header.vehicle_id, first.header.auth_token = CAR, fleet_token

                def call():
                    result = stream(iter(requests), metadata=metadata, timeout=CALL_TIMEOUT_S)
                    if method.server_streaming:
                        for _ in result:  # the session answers Welcome, acks, errors; then it ends when the car does
                            pass

                _check(path, "stream", call)

            streams()
        else:
            unary = channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=bytes)

            @FUZZ
            @given(request_class)
            def valid_shaped(message):
                _check(path, "message", lambda: unary(_contained(method, message), metadata=metadata, timeout=CALL_TIMEOUT_S))

            valid_shaped()
        raw = channel.unary_unary(path, request_serializer=bytes, response_deserializer=bytes) if not method.server_streaming else channel.unary_stream(path, request_serializer=bytes, response_deserializer=bytes)
        if method.client_streaming:
            raw = channel.stream_unary(path, request_serializer=bytes, response_deserializer=bytes) if not method.server_streaming else channel.stream_stream(path, request_serializer=bytes, response_deserializer=bytes)

        @FUZZ
        @given(st.binary(min_size=1, max_size=256))
        def random_bytes(data):
            def call():
                result = raw(iter([data]) if method.client_streaming else data, metadata=metadata, timeout=CALL_TIMEOUT_S)
                if method.server_streaming:
                    for _ in result:
                        pass

            _check(path, "bytes", call)

        random_bytes()
    finally:
        channel.close()
    process = stack.processes[service]
    assert process.proc.poll() is None, f"{service} died while {method.name} was fuzzed"


def test_every_service_still_serves_after_the_fuzzing(stack):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    for name, service in SERVICES.items():
        assert stack.processes[name].proc.poll() is None, f"{name} died"
        with _channel(stack, name) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service.grpc), timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING, name


def test_every_consumer_dead_letters_random_and_wrong_typed_records_and_keeps_going(stack, kafka):
    """Random bytes and a message of another topic's type on every topic the stack's consumers read;
    each consumer group dead-letters what it cannot decode and stays alive."""
    from longtail.kafka import Producer

    from demo.stack import GROUP_TOPICS
    from drills.fleet import TopicWatch

    consumed = {getattr(topics, t) for names in GROUP_TOPICS.values() for t in names}
    watch = TopicWatch(kafka, topics.DEAD_LETTERS, lambda v: v.key.startswith(b"fuzz-"))
    producer = Producer(kafka, "fuzz")
    sent = Counter()
    try:
        for topic in consumed:
            wrong = fleet_pb2.Hello(vehicle_id="x" * 40, auth_token="y" * 40).SerializeToString()  # another topic's type: decodes or not, must not hurt
            for i, value in enumerate([b"\xff\xff\xff\xff", os.urandom(64), wrong]):
                producer.produce_bytes(topic.name, f"fuzz-{uuid.uuid4().hex[:6]}-{i}", value)
                sent[topic.name] += 1
        producer.flush()
        groups = {f"{name}-{stack.run_id}": [getattr(topics, t).name for t in names] for name, names in GROUP_TOPICS.items()}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            lettered = {(r.consumer_group, r.source_topic) for r in watch.records}
            missing = [(g, t) for g, ts in groups.items() for t in ts if (g, t) not in lettered]
            if not missing:
                break
            time.sleep(1.0)
        print(f"\nfuzz: {sum(sent.values())} bad records on {len(sent)} topics; dead letters by group: {Counter(r.consumer_group for r in watch.records)}")
        assert not missing, f"no dead letter from these consumer groups for these topics: {missing}"
    finally:
        watch.stop()
        producer.close()
    for name in SERVICES:
        assert stack.processes[name].proc.poll() is None, f"{name} died on bad records"
