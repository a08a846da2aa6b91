"""trainer as a real process with a real label-store process, the real broker and the real S3
server: tasks declared from tasks.yaml (a new task gets its queue, suite and head), labelled
snapshots -> dataset versions -> runs; the gate refuses a deliberately regressed model (kept with
its report, ModelRefused on Kafka), accepts it with a recorded waiver, publishes an improved one
(ModelPublished on Kafka, a servable model-repository version); a trigger detector trained from the
labels scores positives above negatives; rollback re-announces the previous version.

Each test run uses its own model names, database and consumer groups."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from kafka_probe import read_since

from longtail import model_repo, topics
from longtail import tasks as tasks_mod
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.common.v1 import common_pb2 as C
from longtail.config import S3Settings, load
from longtail.fleet.v1 import events_pb2 as FE
from longtail.fleet.v1 import fleet_pb2 as F
from longtail.kafka import Producer
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.model import torchscript
from longtail.model.network import MultiTaskNet
from longtail.models.v1 import events_pb2 as E
from longtail.models.v1 import trainer_pb2 as T
from longtail.models.v1 import trainer_pb2_grpc
from longtail.registry import LABEL_STORE, TRAINER
from longtail.storage import SNAPSHOTS, ObjectStore
from longtail.synthetic.frames import occluded_only, sample_frames
from longtail.synthetic.world import STOP_SIGN, World, WorldConfig

from longtail_dev.supervisor import ServiceProcess
from trainer import data as data_mod
from trainer import detector

SECRET = "trainer-test-operator-secret-0123456789abcdef"
AUTH = [("authorization", f"Bearer {issue_token('alice', SECRET, audience=OPERATOR_AUDIENCE)}")]
LABELLER = [("authorization", f"Bearer {issue_token('it-labeller', SECRET, audience=OPERATOR_AUDIENCE, roles=('labeller',))}")]
REPO_TASKS = Path(__file__).resolve().parents[2] / "tasks.yaml"
CAUTION = """
  - name: caution_lights_on
    prototype: classification
    classes: ["off", "on"]
    description: Caution lights on (declared by the test).
    suite: {name: caution_lights_on.regressions, predicate: "any(d.cls == on and d.conf >= 0.5)"}
"""
PLAIN = "any(d.cls == stop_sign and d.conf >= 0.5)"
OCCLUDED_POSITIVE = "any(d.cls == stop_sign and d.attr.occlusion == foliage)"


def big_stop(target, gt):
    return any(o.cls == "stop_sign" and o.box_px >= 12 and not o.truncated for o in gt)


class World_:
    """Labelled snapshots in S3 + the label store, with the simulator's ground truth."""

    def __init__(self, objects: ObjectStore, api) -> None:
        self.objects = objects
        self.api = api
        self.truth: dict[str, list] = {}
        self.images: dict[str, np.ndarray] = {}

    def register(self, images, truths, vehicle: str) -> list[str]:
        ids = []
        for img, gt in zip(images, truths):
            put = self.objects.put_content(data_mod.png(img), SNAPSHOTS, ".png", "image/png")
            sample = L.Sample(sample_id=put.sha256, bucket=self.objects.bucket, object_key=put.key, content_type="image/png", provenance=L.Provenance(vehicle_id=vehicle, frame_id=put.sha256[:12]))
            self.api.RegisterSample(L.RegisterSampleRequest(sample=sample), metadata=AUTH, timeout=10)
            self.truth[put.sha256] = gt
            self.images[put.sha256] = img
            ids.append(put.sha256)
        return ids

    def annotation(self, task: str, sample_id: str) -> C.TaskOutput:
        gt = self.truth[sample_id]
        if task == "caution_lights_on":
            return C.TaskOutput(classification=C.ClassificationOutput(cls="on" if any(o.cls == "traffic_light" for o in gt) else "off"))
        out = C.TaskOutput(detection=C.DetectionOutput())
        for o in gt:
            if o.cls == task and o.box_px >= 3:
                d = out.detection.detections.add(cls=o.cls, confidence=1.0, box=C.BoundingBox(x_min=o.box[0], y_min=o.box[1], x_max=o.box[2], y_max=o.box[3]))
                d.attributes.update(o.attributes)
        return out

    def label_all(self, task: str) -> int:
        n = 0
        while True:
            lease = self.api.GetNextTask(L.GetNextTaskRequest(task=task), metadata=LABELLER, timeout=10).lease
            if not lease.lease_id:
                return n
            label = L.Label(sample_id=lease.sample.sample_id, task=task, labeller_kind=L.LABELLER_KIND_SIMULATED, annotation=self.annotation(task, lease.sample.sample_id))
            self.api.SubmitLabel(L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key=lease.lease_id, label=label), metadata=LABELLER, timeout=10)
            n += 1


def start_group_at_the_end(kafka: str, group: str, topic: str) -> None:
    """Commit the group's offsets at the topic's end: the label store then sees only this test's
    samples, not the snapshots other tests left on the shared topic."""
    import confluent_kafka

    from longtail.topics import ensure_topics

    ensure_topics(kafka, topics.ALL, 1)
    consumer = confluent_kafka.Consumer({"bootstrap.servers": kafka, "group.id": group, "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = [confluent_kafka.TopicPartition(topic, p, consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=30)[1]) for p in partitions]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


@pytest.fixture
def services(kafka, s3, tmp_path):
    run = uuid.uuid4().hex[:8]
    objects = ObjectStore(load(S3Settings))
    objects.ensure_bucket()
    start_group_at_the_end(kafka, f"label-store-it-{run}", topics.SNAPSHOTS.name)
    label_store = ServiceProcess(
        LABEL_STORE.package, LABEL_STORE.grpc, {"OPERATOR_TOKEN_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path / 'labels.db'}", "LABEL_STORE_CONSUMER_GROUP": f"label-store-it-{run}", "LABEL_STORE_DATA_DIR": str(tmp_path)}
    ).start(timeout=90)
    tasks_file = tmp_path / "tasks.yaml"
    tasks_file.write_text(REPO_TASKS.read_text() + CAUTION)
    trainer = None
    try:
        trainer = ServiceProcess(
            TRAINER.package,
            TRAINER.grpc,
            {
                "OPERATOR_TOKEN_SECRET": SECRET,
                "LABEL_STORE_ADDR": label_store.address,
                "TRAINER_TASKS_FILE": str(tasks_file),
                "TRAINER_MODEL_NAME": f"it-{run}",
                "TRAINER_LABEL_THRESHOLD": "0",
                "TRAINER_THREADS": "2",
                "TRAINER_CONSUMER_GROUP": f"trainer-it-{run}",
            },
        ).start(timeout=120)
        yield {
            "run": run,
            "objects": objects,
            "label_store": label_store,
            "trainer": trainer,
            "labels": labels_pb2_grpc.LabelStoreServiceStub(label_store.channel()),
            "api": trainer_pb2_grpc.TrainerServiceStub(trainer.channel()),
        }
    finally:
        if trainer is not None:
            trainer.stop()
        label_store.stop()


def start(api, spec: T.RunSpec, timeout: float = 600.0) -> T.Run:
    run = api.StartRun(T.StartRunRequest(spec=spec), metadata=AUTH, timeout=10).run
    deadline = time.monotonic() + timeout
    progress = []
    while run.status not in (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED):
        assert time.monotonic() < deadline, f"run {run.run_id} still {T.RunStatus.Name(run.status)}"
        time.sleep(0.3)
        run = api.GetRun(T.GetRunRequest(run_id=run.run_id), timeout=10).run
        progress.append(run.progress)
    assert progress == sorted(progress), "progress never goes back"
    return run


def hp(**kw):
    from google.protobuf import struct_pb2

    s = struct_pb2.Struct()
    s.update(kw)
    return s


def test_trainer_declares_tasks_trains_gates_publishes_and_trains_a_detector(services, kafka):
    api, labels, objects, run = services["api"], services["labels"], services["objects"], services["run"]
    name = f"it-{run}"
    since_ms = int(time.time() * 1000) - 1000

    # the new task from tasks.yaml: a label schema + queue and a default suite, with no code
    task = labels.GetTask(L.GetTaskRequest(name="caution_lights_on"), timeout=10).task
    assert task.prototype == C.TASK_PROTOTYPE_CLASSIFICATION and list(task.classes) == ["off", "on"]
    assert labels.GetSuite(L.GetSuiteRequest(name="caution_lights_on.regressions"), timeout=10).suite.task == "caution_lights_on"

    # labelled data: half of the stop signs occluded (the long tail the fleet collected)
    w = World_(objects, labels)
    frames = sample_frames(World(WorldConfig().only(occluded_rate=0.5), seed=777), 160, seed=1)
    w.register(frames.images, frames.truths, f"it-{run}")
    # suites: plain stop signs must stay detected, occluded ones should become detected
    plain = sample_frames(World(WorldConfig().common_only(), seed=778), 8, seed=2, mix={STOP_SIGN: 1.0}, distance=(4.0, 12.0), accept=big_stop, max_tries=50)
    occl = sample_frames(World(occluded_only(), seed=779), 8, seed=3, mix={STOP_SIGN: 1.0}, distance=(4.0, 12.0), accept=big_stop, max_tries=50)
    plain_ids = w.register(plain.images, plain.truths, f"it-{run}-suite")
    occl_ids = w.register(occl.images, occl.truths, f"it-{run}-suite")
    for suite, ids in ((f"it{run}.plain", plain_ids), (f"it{run}.occluded", occl_ids)):
        yaml = f"suite: {suite}\ntask: stop_sign\npredicate: {PLAIN}\ncases:\n" + "".join(f"  - sample: {i}\n" for i in ids)
        labels.UpsertSuite(L.UpsertSuiteRequest(yaml=yaml), metadata=AUTH, timeout=10)
    assert w.label_all("stop_sign") == 176
    assert w.label_all("caution_lights_on") == 176  # the new task's queue holds every sample
    signs = labels.CreateDataset(L.CreateDatasetRequest(name=f"it-{run}-signs", tasks=["stop_sign"]), metadata=AUTH, timeout=60).dataset
    caution = labels.CreateDataset(L.CreateDatasetRequest(name=f"it-{run}-caution", tasks=["caution_lights_on"]), metadata=AUTH, timeout=60).dataset
    assert signs.split_counts.train > 100  # the suite cases are not in it (no leakage)
    assert signs.split_counts.train + signs.split_counts.val + signs.split_counts.test == 160

    # v1: the bootstrap-style production model (common cases only, the shared tasks, no caution
    # head), published and announced as the fleet had it before this trainer existed
    from fleet_sim.bootstrap import train_on_world

    base = train_on_world(WorldConfig().common_only(), seed=1, samples=700, epochs=5)
    pv = model_repo.publish(objects, base, name, 1)
    producer = Producer(kafka, "trainer-it")
    producer.produce(topics.MODELS_PUBLISHED, name, model_repo.published_event(pv, C.MODEL_ROLE_PRODUCTION, objects.bucket))
    producer.close()
    deadline = time.monotonic() + 30
    while api.GetModel(T.GetModelRequest(model=C.ModelRef(name=name, version=1)), timeout=10).model.state != T.MODEL_STATE_PRODUCTION:
        assert time.monotonic() < deadline, "the trainer never saw the PRODUCTION publication"
        time.sleep(0.2)
    v1 = 1

    # a deliberately regressed candidate: fresh weights, one epoch -> refused, kept with its report
    bad = start(api, T.RunSpec(model_name=name, from_scratch=True, epochs=1, seed=2, datasets=[C.DatasetRef(name=signs.name)]))
    assert bad.status == T.RUN_STATUS_REFUSED, bad.error
    assert not bad.gate_report.accepted and bad.gate_report.baseline.version == v1
    assert {s.suite: s.before_pass_rate for s in bad.gate_report.suites}[f"it{run}.plain"] >= 0.5  # the baseline passes cases
    regressed = [s for s in bad.gate_report.suites if s.regressed_case_ids]
    assert any(s.suite == f"it{run}.plain" for s in regressed)
    # the baseline was also judged on every case moved by a pixel: chance passes are a subset, stable ones block
    assert all(set(s.unstable_case_ids) <= set(s.regressed_case_ids) for s in bad.gate_report.suites)
    assert any(set(s.regressed_case_ids) - set(s.unstable_case_ids) for s in regressed)
    refused = api.GetModel(T.GetModelRequest(model=C.ModelRef(name=name, version=bad.model.version)), timeout=10).model
    assert refused.state == T.MODEL_STATE_REFUSED and list(refused.gate_report.reasons) == list(bad.gate_report.reasons)
    with pytest.raises(grpc.RpcError) as err:
        api.PromoteModel(T.PromoteModelRequest(model=refused.model), metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert api.GetModel(T.GetModelRequest(model=C.ModelRef(name=name)), timeout=10).model.model.version == v1

    # the same candidate with waivers: accepted (as a shadow CANDIDATE), the waivers recorded
    waivers = [T.Waiver(suite=s.suite, reason="integration test: accepted regression", approved_by="alice") for s in regressed]
    waived = start(api, T.RunSpec(model_name=name, from_scratch=True, epochs=1, seed=2, datasets=[C.DatasetRef(name=signs.name)], waivers=waivers))
    assert waived.status == T.RUN_STATUS_SUCCEEDED, (waived.error, list(waived.gate_report.reasons))
    assert {w_.suite for w_ in waived.gate_report.waivers_applied} == {s.suite for s in regressed}
    mv = api.GetModel(T.GetModelRequest(model=waived.model), timeout=10).model
    assert mv.state == T.MODEL_STATE_CANDIDATE and mv.gate_report.waivers_applied[0].reason == "integration test: accepted regression"

    # an improved candidate from production on both datasets: a head for the new task, accepted, PRODUCTION
    good = start(api, T.RunSpec(model_name=name, promote=True, seed=3, epochs=6, hyperparameters=hp(lr=0.001), datasets=[C.DatasetRef(name=signs.name), C.DatasetRef(name=caution.name)]))
    assert good.status == T.RUN_STATUS_SUCCEEDED, (good.error, list(good.gate_report.reasons))
    assert list(good.fresh_heads) == ["caution_lights_on"]
    assert good.gate_report.accepted and good.gate_report.baseline.version == v1
    occluded_gate = next(s for s in good.gate_report.suites if s.suite == f"it{run}.occluded")
    assert occluded_gate.after_pass_rate > occluded_gate.before_pass_rate, occluded_gate
    assert "val/caution_lights_on/accuracy" in good.metrics and "val/stop_sign/recall" in good.metrics
    version = model_repo.load_version(objects, name, good.model.version)  # exactly what inference validates before serving
    assert "caution_lights_on" in [t.name for t in version.tasks]
    assert version.manifest["parent"] == v1 and {d["name"] for d in version.manifest["datasets"]} == {signs.name, caution.name}
    assert api.GetModel(T.GetModelRequest(model=C.ModelRef(name=name)), timeout=10).model.model.version == good.model.version
    report = labels.GetSuiteReport(L.GetSuiteReportRequest(model_name=name), timeout=10).results
    assert {(r.suite, r.model.version) for r in report} >= {(f"it{run}.occluded", good.model.version)}

    # trigger detector for the long tail, from the same labels
    det_name = f"occl_{run}"
    d = start(api, T.RunSpec(kind=T.RUN_KIND_TRIGGER_DETECTOR, detector_name=det_name, tasks=["stop_sign"], seed=0, epochs=10, positive_predicate=OCCLUDED_POSITIVE, datasets=[C.DatasetRef(name=signs.name)]))
    assert d.status == T.RUN_STATUS_SUCCEEDED, (d.error, list(d.gate_report.reasons))
    dmv = api.GetModel(T.GetModelRequest(model=d.model), timeout=10).model
    net = torchscript.load_scripted(objects.get(dmv.weights_key))  # the bytes the gateway beams to cars
    sp, sn = detector.scores(net, occl.images), detector.scores(net, plain.images)
    assert sp.mean() > sn.mean() and detector.auc(sp, sn) > 0.8, (sp, sn)

    # rollback: the previous PRODUCTION version is announced again
    rb = api.RollbackModel(T.RollbackModelRequest(model_name=name, reason="test"), metadata=AUTH, timeout=10)
    assert rb.model.model.version == v1 and rb.rolled_back_from.version == good.model.version

    listed = api.ListModels(T.ListModelsRequest(name=name), timeout=10).models
    states = {m.model.version: m.state for m in listed}
    assert states == {v1: T.MODEL_STATE_PRODUCTION, bad.model.version: T.MODEL_STATE_REFUSED, waived.model.version: T.MODEL_STATE_CANDIDATE, good.model.version: T.MODEL_STATE_RETIRED}

    cmp = api.CompareModels(T.CompareModelsRequest(production=C.ModelRef(name=name, version=v1), candidate=good.model, suites=[f"it{run}.occluded"]), timeout=60)
    assert cmp.frames_compared == 8 and cmp.frames_disagreeing >= 1 and cmp.by_task["stop_sign"] >= 1

    # fleet evidence: what cars running the candidate in shadow mode reported (as the gateway produces it)
    evidence = Producer(kafka, "test-gateway")
    for vehicle, frame, compared, kind in (("car-a", "car-a:4", 4, F.SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE), ("car-a", "", 300, None), ("car-b", "car-b:9", 9, F.SHADOW_DIFFERENCE_KIND_MISSED_BY_CANDIDATE)):
        e = FE.ShadowDisagreementEvent(vehicle_id=vehicle, frame_id=frame, production=C.ModelRef(name=name, version=v1), candidate=good.model, task="stop_sign" if kind else "", frames_compared=compared)
        if kind:
            e.differences.add(kind=kind, production=C.Detection(cls="stop_sign", confidence=0.9))
        evidence.produce(topics.SHADOW_DISAGREEMENTS, vehicle, e)
    evidence.flush()
    evidence.close()
    fleet_req = T.CompareModelsRequest(production=C.ModelRef(name=name, version=v1), candidate=good.model)
    fleet_req.time_range.since.FromMilliseconds(since_ms)
    fleet_cmp = api.CompareModels(fleet_req, timeout=60)
    assert (fleet_cmp.frames_compared, fleet_cmp.frames_disagreeing, fleet_cmp.distinct_vehicles) == (313, 2, 2), fleet_cmp
    assert fleet_cmp.by_kind["SHADOW_DIFFERENCE_KIND_MISSED_BY_CANDIDATE"] == 1 and fleet_cmp.source.startswith("fleet shadow mode")
    with pytest.raises(grpc.RpcError) as both:
        fleet_req.suites.append(f"it{run}.occluded")
        api.CompareModels(fleet_req, timeout=60)
    assert both.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not both" in both.value.details()

    # on Kafka: publications (PRODUCTION v1, CANDIDATE waived, PRODUCTION good, detector, rollback) and the refusal
    published = [e for _, e in read_since(kafka, topics.MODELS_PUBLISHED, since_ms) if e.model.name in (name, det_name)]
    seen = [(e.model.version, e.role) for e in published]
    assert seen == [(v1, C.MODEL_ROLE_PRODUCTION), (waived.model.version, C.MODEL_ROLE_CANDIDATE), (good.model.version, C.MODEL_ROLE_PRODUCTION), (d.model.version, C.MODEL_ROLE_TRIGGER_DETECTOR), (v1, C.MODEL_ROLE_PRODUCTION)], seen
    assert published[3].detector_name == det_name and published[2].sha256 == version.sha256
    refusals = [e for _, e in read_since(kafka, topics.MODELS_REFUSED, since_ms) if e.model.name == name]
    assert [(e.model.version, e.refused_by) for e in refusals] == [(bad.model.version, "trainer")]
    assert isinstance(refusals[0], E.ModelRefused) and not refusals[0].gate_report.accepted


def test_import_model_publishes_a_first_version_once_and_refuses_bad_input(services, kafka):
    api, run = services["api"], services["run"]
    name = f"imported-{run}"
    net = MultiTaskNet(list(tasks_mod.DEFAULT_TASKS))
    weights = torchscript.to_bytes(net)
    since_ms = int(time.time() * 1000)
    with pytest.raises(grpc.RpcError) as exc:  # writes need an operator
        api.ImportModel(T.ImportModelRequest(model_name=name, weights=weights), timeout=30)
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    for request, field in (
        (T.ImportModelRequest(model_name="Bad Name", weights=weights), "model_name"),
        (T.ImportModelRequest(model_name=name), "weights"),
        (T.ImportModelRequest(model_name=name, weights=b"not an archive"), "weights"),
        (T.ImportModelRequest(model_name=name, weights=weights, role=C.MODEL_ROLE_TRIGGER_DETECTOR), "role"),
    ):
        with pytest.raises(grpc.RpcError) as exc:
            api.ImportModel(request, metadata=AUTH, timeout=30)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and exc.value.details().startswith(field), exc.value.details()

    first = api.ImportModel(T.ImportModelRequest(model_name=name, weights=weights, reason="bootstrap"), metadata=AUTH, timeout=60)
    assert not first.already_existed and first.model.model.version == 1 and first.model.state == T.MODEL_STATE_PRODUCTION
    again = api.ImportModel(T.ImportModelRequest(model_name=name, weights=weights), metadata=AUTH, timeout=60)  # a retry
    assert again.already_existed and again.model.model.version == 1
    other = torchscript.to_bytes(MultiTaskNet(list(tasks_mod.DEFAULT_TASKS), (8, 16, 24, 32)))
    with pytest.raises(grpc.RpcError) as exc:  # later versions come from runs through the gate
        api.ImportModel(T.ImportModelRequest(model_name=name, weights=other), metadata=AUTH, timeout=60)
    assert exc.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert api.GetModel(T.GetModelRequest(model=C.ModelRef(name=name)), timeout=10).model.model.version == 1
    published = [(e.model.version, e.role) for _, e in read_since(kafka, topics.MODELS_PUBLISHED, since_ms) if e.model.name == name]
    assert published == [(1, C.MODEL_ROLE_PRODUCTION)]
    stored = services["objects"].get(model_repo.file_key(name, 1, model_repo.WEIGHTS_FILE))
    assert torchscript.state_dict_sha256(torchscript.from_bytes(stored)) == torchscript.state_dict_sha256(net)
