"""inference as a real process against the real Triton (PyTriton's tritonserver, explicit model
control over the S3 model repository), the real broker and the real S3 server.

Each run uses its own model name and consumer group, so runs on shared infrastructure never see
each other's versions or offsets. Expected answers come from the eager network in this process.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import urllib.request
import uuid

import grpc
import numpy as np
import pytest
import torch
from kafka_probe import read_since
from PIL import Image

from longtail import model_repo, topics
from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2
from longtail.config import S3Settings
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.inference.v1 import inference_pb2, inference_pb2_grpc
from longtail.kafka import Producer
from longtail.model.network import MultiTaskNet
from longtail.registry import INFERENCE
from longtail.storage import SNAPSHOTS, ObjectStore

from longtail_dev.supervisor import ServiceProcess

SERVICE = INFERENCE.grpc
WEATHER = tasks_mod.TaskSpec("weather", "classification", ("dry", "wet"))


def make_model(seed: int, extra=()) -> MultiTaskNet:
    torch.manual_seed(seed)
    net = MultiTaskNet(list(tasks_mod.DEFAULT_TASKS) + list(extra))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so versions really differ
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


class Run:
    def __init__(self, kafka: str, s3: dict) -> None:
        self.kafka = kafka
        self.name = f"it_{uuid.uuid4().hex[:8]}"
        self.group = f"inference-it-{uuid.uuid4().hex[:6]}"
        self.store = ObjectStore(S3Settings(**{k.removeprefix("S3_").lower(): v for k, v in s3.items()}))
        self.producer = Producer(kafka, "inference-test")
        self.models: dict[int, MultiTaskNet] = {}
        self.since_ms = int(time.time() * 1000) - 1000

    def publish(self, version: int, net: MultiTaskNet, announce: bool = True) -> model_repo.PublishedVersion:
        pv = model_repo.publish(self.store, net, self.name, version, parent=version - 1 or None)
        self.models[version] = net
        if announce:
            self.announce(pv)
        return pv

    def announce(self, pv: model_repo.PublishedVersion) -> None:
        self.producer.produce(topics.MODELS_PUBLISHED, pv.name, model_repo.published_event(pv, common_pb2.MODEL_ROLE_PRODUCTION, self.store.bucket))
        self.producer.flush()


@pytest.fixture(scope="module")
def run(kafka, s3, triton):
    return Run(kafka, s3)


@pytest.fixture(scope="module")
def service(run):
    run.publish(1, make_model(1))
    svc = ServiceProcess("inference", SERVICE, {"INFERENCE_MODEL_NAME": run.name, "INFERENCE_CONSUMER_GROUP": run.group}).start(timeout=240)
    try:
        yield svc
    finally:
        assert svc.stop() == 0
        run.producer.close()


def stub(service) -> inference_pb2_grpc.InferenceServiceStub:
    return inference_pb2_grpc.InferenceServiceStub(service.channel())


def serving_version(service) -> int:
    return stub(service).GetServingModel(inference_pb2.GetServingModelRequest(), timeout=10).model.version


def wait_serving(service, version: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while serving_version(service) != version:
        assert time.monotonic() < deadline, f"version {version} not served after {timeout}s"
        time.sleep(0.2)


def assert_matches_eager(prediction_map, net, img) -> None:
    want = net.predict(img[None])[0]
    assert set(prediction_map) == {t.name for t in net.tasks}
    for task in net.tasks:
        got = prediction_map[task.name]
        if task.prototype == "detection":
            e, _ = _entropy(want[task.name]["class_scores"].values())
        else:
            e, _ = _entropy(want[task.name]["probabilities"].values())
            assert got.output.classification.cls == want[task.name]["cls"]
        assert got.uncertainty.entropy == pytest.approx(e, abs=1e-4), task.name


def _entropy(ps):
    p = np.clip(np.array(list(ps), dtype=np.float64), 1e-12, 1)
    return float(-(p * np.log(p)).sum()), None


def test_serves_the_published_version_with_the_models_answers(service, run):
    assert serving_version(service) == 1
    img = image(11)
    got = stub(service).Infer(inference_pb2.InferRequest(image=png(img)), timeout=30)
    assert got.model.name == run.name and got.model.version == 1
    assert_matches_eager(got.predictions, run.models[1], img)


def test_publish_load_infer_with_the_new_version(service, run):
    run.publish(2, make_model(2, [WEATHER]))  # a new task head: the version's own layout
    wait_serving(service, 2)
    img = image(12)
    got = stub(service).Infer(inference_pb2.InferRequest(image=png(img)), timeout=30)
    assert got.model.version == 2 and "weather" in got.predictions
    assert_matches_eager(got.predictions, run.models[2], img)
    serving = stub(service).GetServingModel(inference_pb2.GetServingModelRequest(), timeout=10)
    assert [m.version for m in serving.loaded] == [1, 2] and list(serving.tasks) == ["stop_sign", "traffic_light", "weather"]
    # the previous version stays loaded (instant rollback) and answers when asked for explicitly
    old = stub(service).Infer(inference_pb2.InferRequest(image=png(img), model={"version": 1}), timeout=30)
    assert old.model.version == 1 and "weather" not in old.predictions


def test_swap_under_load_has_zero_failed_requests(service, run):
    stop = threading.Event()
    outcomes: list[tuple[int, str]] = []
    lock = threading.Lock()
    payload = png(image(13))

    def caller():
        client = stub(service)
        while not stop.is_set():
            try:
                version = client.Infer(inference_pb2.InferRequest(image=payload), timeout=30).model.version
                with lock:
                    outcomes.append((version, "ok"))
            except grpc.RpcError as exc:
                with lock:
                    outcomes.append((0, exc.code().name))

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    run.publish(3, make_model(3))
    wait_serving(service, 3)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(10)
    failed = [o for o in outcomes if o[1] != "ok"]
    versions = {v for v, _ in outcomes}
    print(f"\n{len(outcomes)} requests during the swap, {len(failed)} failed, versions {sorted(versions)}")
    assert not failed, failed[:5]
    assert {2, 3} <= versions and len(outcomes) > 50


def test_a_corrupt_version_is_refused_and_the_old_one_keeps_answering(service, run):
    pv = run.publish(4, make_model(4), announce=False)
    garbage = b"PK\x03\x04 this is not a TorchScript archive"
    run.store.put_at(pv.weights_key, garbage)  # a broken trainer: manifest agrees with the bytes
    manifest = dict(pv.manifest)
    manifest["files"] = {**manifest["files"], "model.pt": {"sha256": hashlib.sha256(garbage).hexdigest(), "size": len(garbage)}}
    run.store.put_at(pv.manifest_key, json.dumps(manifest).encode())
    run.announce(pv)
    refusals = read_since(run.kafka, topics.MODELS_REFUSED, run.since_ms, lambda k, v: k == run.name and v.model.version == 4 and v.refused_by == "inference", want=1)
    assert refusals and "TorchScript" in refusals[0][1].reason
    assert serving_version(service) == 3
    got = stub(service).Infer(inference_pb2.InferRequest(image=png(image(14))), timeout=30)
    assert got.model.version == 3
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=10).read().decode()
    assert f'longtail_inference_serving_version{{model="{run.name}",service="inference"}} 3.0' in metrics
    assert f'longtail_inference_model_versions_total{{model="{run.name}",outcome="refused",service="inference"}} 1.0' in metrics


def test_a_snapshot_event_yields_an_inference_result(service, run):
    img = image(uuid.uuid4().int % 2**32)  # a snapshot of this run only (ids are content hashes)
    put = run.store.put_content(png(img), SNAPSHOTS, ".png", "image/png")
    event = fleet_events.SnapshotUploaded(snapshot_id=put.sha256, vehicle_id="it-car", frame_id="it-car:1", object_key=put.key, bucket=run.store.bucket, size_bytes=put.size, content_type="image/png")
    run.producer.produce(topics.SNAPSHOTS, put.sha256, event)
    run.producer.flush()
    results = read_since(run.kafka, topics.INFERENCE_RESULTS, run.since_ms, lambda k, v: k == put.sha256 and v.model.name == run.name, want=1)
    assert results, "no InferenceResult for the snapshot"
    key, result = results[0]
    assert result.snapshot_id == put.sha256 and result.model.version == 3 and result.latency.ToNanoseconds() > 0
    assert_matches_eager(result.predictions, run.models[3], img)


def test_malformed_snapshot_events_are_dead_lettered(service, run):
    bad_bytes_key, missing_key = f"bad-{uuid.uuid4().hex[:8]}", f"missing-{uuid.uuid4().hex[:8]}"
    run.producer.produce_bytes(topics.SNAPSHOTS.name, bad_bytes_key, b"\xff\x00 definitely not a SnapshotUploaded")
    missing = fleet_events.SnapshotUploaded(snapshot_id="0" * 64, object_key=f"snapshots/00/{'0' * 63}1.png", content_type="image/png")
    run.producer.produce(topics.SNAPSHOTS, missing_key, missing)
    run.producer.flush()
    letters = read_since(run.kafka, topics.DEAD_LETTERS, run.since_ms, lambda k, v: v.consumer_group == run.group and v.key.decode(errors="replace") in (bad_bytes_key, missing_key), want=2)
    by_key = {v.key.decode(): v for _, v in letters}
    assert set(by_key) == {bad_bytes_key, missing_key}
    assert "cannot decode" in by_key[bad_bytes_key].error and "does not exist" in by_key[missing_key].error
    assert service.proc.poll() is None and serving_version(service) == 3  # kept going


def test_without_a_model_it_is_alive_but_not_ready(kafka, s3, triton):
    """Waiting for the first published version is not a reason to be restarted: the server ("",
    the liveness probe) answers SERVING, the service name (readiness) NOT_SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    name = f"none_{uuid.uuid4().hex[:8]}"
    svc = ServiceProcess("inference", "", {"INFERENCE_MODEL_NAME": name, "INFERENCE_CONSUMER_GROUP": f"inference-it-{uuid.uuid4().hex[:6]}"}).start(timeout=240)
    try:
        health = health_pb2_grpc.HealthStub(svc.channel())
        time.sleep(2.0)  # a few rounds of the health watch
        status = {n: health.Check(health_pb2.HealthCheckRequest(service=n), timeout=5).status for n in ("", SERVICE)}
        assert status == {"": health_pb2.HealthCheckResponse.SERVING, SERVICE: health_pb2.HealthCheckResponse.NOT_SERVING}
    finally:
        svc.stop()
