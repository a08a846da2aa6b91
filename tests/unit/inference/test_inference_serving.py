"""Version swaps, refusals and leases (ModelManager) and the snapshot handler, with a fake Triton
that runs the published TorchScript."""

from __future__ import annotations

import asyncio
import io
import threading
import time

import grpc
import numpy as np
import pytest
from PIL import Image

from longtail import model_repo, topics
from longtail import tasks as tasks_mod
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.inference.v1 import inference_pb2
from longtail.kafka import Record, RecordError

from inference.service import InferenceServicer
from inference.serving import ModelManager, NotServing
from inference.worker import SnapshotWorker, score

WEATHER = tasks_mod.TaskSpec("weather", "classification", ("dry", "wet"))


def image(seed=0, size=64):
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


def png(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def published(store, make_model):
    nets = {1: make_model(1), 2: make_model(2, [WEATHER])}
    for v, net in nets.items():
        model_repo.publish(store, net, "mt", v)
    return nets


@pytest.fixture
def manager(store, triton):
    refused = []
    m = ModelManager("mt", store, triton, on_refused=refused.append, load_timeout_s=5, drain_timeout_s=2)
    m.refusals = refused
    return m


def test_publish_load_and_infer_with_the_new_version(manager, triton, published):
    assert manager.apply(1) == "served" and manager.current.version == 1
    img = image()
    mv, preds, _ = score(manager, [img], "test")
    want = published[1].predict(img[None])[0]
    assert mv.version == 1 and set(preds[0]) == {"stop_sign", "traffic_light"}
    assert preds[0]["stop_sign"].uncertainty.margin == pytest.approx(abs(2 * want["stop_sign"]["presence"] - 1), abs=1e-4)
    assert manager.apply(2) == "served"
    assert (manager.current.version, manager.previous.version) == (2, 1)
    assert triton.loads[-1] == ("mt", [1, 2])  # the old version stays loaded while (and after) the new one loads
    mv, preds, _ = score(manager, [img], "test")
    assert mv.version == 2 and set(preds[0]) == {"stop_sign", "traffic_light", "weather"}
    assert manager.apply(2) == "already"
    # a rollback to the previous version needs no load at all
    loads = len(triton.loads)
    assert manager.apply(1) == "served" and manager.current.version == 1 and len(triton.loads) == loads


def test_after_triton_restarted_the_failed_call_reloads_the_served_versions_for_the_retry(manager, triton, published):
    assert manager.apply(1) == "served" and manager.apply(2) == "served"
    triton.restart()
    with pytest.raises(RuntimeError, match="unknown model"):
        score(manager, [image()], "test")
    assert triton.loads[-1] == ("mt", [1, 2])  # the same version set as before, loaded again
    mv, _preds, _ = score(manager, [image()], "test")  # the retry
    assert mv.version == 2 and not manager.recover()  # nothing lost: nothing to reload


def test_a_corrupt_version_is_refused_and_the_old_one_keeps_serving(manager, store, triton, published, make_model):
    manager.apply(1)
    model_repo.publish(store, make_model(3), "mt", 3)
    store.objects[model_repo.file_key("mt", 3, "model.pt")] = b"PK\x03\x04 truncated"
    assert manager.apply(3) == "refused"
    assert manager.current.version == 1 and "sha256" in manager.refused[3]
    event = manager.refusals[-1]
    assert (event.model.name, event.model.version, event.refused_by) == ("mt", 3, "inference") and "sha256" in event.reason
    assert not any(3 in versions for _, versions in triton.loads)  # never reached Triton
    assert score(manager, [image()], "test")[0].version == 1
    assert manager.apply(3) == "refused" and len(manager.refusals) == 1  # refused once, remembered


def test_a_version_triton_cannot_load_is_refused_and_the_old_set_restored(manager, triton, published):
    manager.apply(1)
    triton.fail_load.add(2)
    assert manager.apply(2) == "refused" and "Triton could not serve it" in manager.refused[2]
    assert manager.current.version == 1 and triton.loads[-1] == ("mt", [1]) and triton.ready("mt", 1)
    assert score(manager, [image()], "test")[0].version == 1


def test_requests_in_flight_keep_their_version_until_done(manager, triton, published, store, make_model):
    manager.apply(1)
    manager.apply(2)  # loaded: 1 (previous), 2 (current)
    model_repo.publish(store, make_model(4), "mt", 4)
    lease = manager.lease(1)  # e.g. an Infer that asked for version 1 explicitly
    mv = lease.__enter__()
    done = threading.Event()
    threading.Thread(target=lambda: (manager.apply(4), done.set()), daemon=True).start()
    time.sleep(0.3)
    assert not done.is_set() and triton.ready("mt", 1)  # the swap waits for version 1's request
    with pytest.raises(NotServing):
        manager.lease(1).__enter__()  # ... but no new request may start on a leaving version
    assert triton.infer("mt", mv.version, image()[None]).shape[0] == 1
    lease.__exit__(None, None, None)
    assert done.wait(5) and manager.current.version == 4 and not triton.ready("mt", 1)
    assert [m.version for m in manager.loaded()] == [2, 4]


def test_bootstrap_falls_back_to_an_older_production_version(manager, store, published):
    store.objects[model_repo.file_key("mt", 2, "manifest.json")] = b"{not json"
    assert manager.bootstrap([2, 1]).version == 1
    assert "not JSON" in manager.refused[2]


def test_nothing_served_means_not_serving(manager):
    with pytest.raises(NotServing):
        score(manager, [image()], "test")


class FakeProducer:
    def __init__(self):
        self.sent = []

    def produce(self, topic, key, value):
        self.sent.append((topic, key, value))

    def flush(self, timeout=30):
        pass


def snapshot_record(store, offset, data, content_type="image/png", key=None):
    sid = f"{offset:064x}"
    store.put_at(f"snapshots/{sid[:2]}/{sid}.png", data)
    event = fleet_events.SnapshotUploaded(snapshot_id=sid, object_key=f"snapshots/{sid[:2]}/{sid}.png", content_type=content_type, vehicle_id="car-1")
    return Record(topics.SNAPSHOTS.name, 0, offset, key or sid, event, 0)


def test_snapshot_events_become_inference_results(manager, store, triton, published):
    manager.apply(2)
    producer = FakeProducer()
    worker = SnapshotWorker(manager, store, producer, "unused:1", consumer=object(), max_batch=2)
    records = [snapshot_record(store, i, png(image(i))) for i in range(5)]
    worker.handle(records)
    results = [(k, v) for t, k, v in producer.sent if t == topics.INFERENCE_RESULTS]
    assert [k for k, _ in results] == [r.value.snapshot_id for r in records]  # keyed by snapshot_id
    assert all(v.model.version == 2 and set(v.predictions) == {"stop_sign", "traffic_light", "weather"} for _, v in results)
    want = published[2].predict(image(3)[None])[0]["weather"]["probabilities"]["wet"]
    assert results[3][1].predictions["weather"].output.classification.probabilities["wet"] == pytest.approx(want, abs=1e-4)
    assert [n for _, _, n in triton.calls] == [1, 2, 2, 1]  # the warm-up, then client-side batches of max_batch
    with pytest.raises(RecordError, match="not a decodable image"):
        worker.handle([snapshot_record(store, 99, b"\x89PNG\r\n\x1a\n broken")])
    missing = snapshot_record(store, 98, png(image()))
    del store.objects[missing.value.object_key]
    with pytest.raises(RecordError, match="does not exist"):
        worker.handle([missing])


class Aborted(Exception):
    def __init__(self, code, details):
        super().__init__(f"{code}: {details}")
        self.code = code


class Context:
    async def abort(self, code, details):
        raise Aborted(code, details)


def test_grpc_infer_and_get_serving_model(manager, store, published):
    servicer = InferenceServicer(manager, store, threads=2)
    call = lambda coro: asyncio.run(coro)  # noqa: E731
    with pytest.raises(Aborted) as err:
        call(servicer.Infer(inference_pb2.InferRequest(image=png(image())), Context()))
    assert err.value.code == grpc.StatusCode.UNAVAILABLE
    manager.apply(1)
    manager.apply(2)
    got = call(servicer.Infer(inference_pb2.InferRequest(image=png(image()), tasks=["weather"]), Context()))
    assert got.model.version == 2 and list(got.predictions) == ["weather"]
    got = call(servicer.Infer(inference_pb2.InferRequest(image=png(image()), model={"version": 1}), Context()))
    assert got.model.version == 1 and set(got.predictions) == {"stop_sign", "traffic_light"}
    sid = f"{7:064x}"
    store.put_at(f"snapshots/{sid[:2]}/{sid}.png", png(image(7)))
    assert call(servicer.Infer(inference_pb2.InferRequest(snapshot_id=sid), Context())).model.version == 2
    for request, code in [
        (inference_pb2.InferRequest(image=png(image()), model={"version": 9}), grpc.StatusCode.FAILED_PRECONDITION),
        (inference_pb2.InferRequest(image=png(image()), tasks=["nope"]), grpc.StatusCode.INVALID_ARGUMENT),
        (inference_pb2.InferRequest(image=b"junk"), grpc.StatusCode.INVALID_ARGUMENT),
        (inference_pb2.InferRequest(snapshot_id=f"{8:064x}"), grpc.StatusCode.NOT_FOUND),
        (inference_pb2.InferRequest(snapshot_id="not-a-sha"), grpc.StatusCode.INVALID_ARGUMENT),
        (inference_pb2.InferRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (inference_pb2.InferRequest(image=png(image()), model={"name": "other"}), grpc.StatusCode.NOT_FOUND),
    ]:
        with pytest.raises(Aborted) as err:
            call(servicer.Infer(request, Context()))
        assert err.value.code == code, request
    serving = call(servicer.GetServingModel(inference_pb2.GetServingModelRequest(), Context()))
    assert serving.model.version == 2 and [m.version for m in serving.loaded] == [1, 2] and "weather" in serving.tasks
    servicer.close()
