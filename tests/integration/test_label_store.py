"""label-store against real PostgreSQL and SQLite (every test runs on both), real S3 and real
Kafka: concurrent labellers, lease expiry, dataset rebuilds, and the service as a process
consuming real snapshot events — idempotently, dead-lettering malformed records, and losing
nothing it acknowledged across a kill -9."""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from contextlib import contextmanager

import grpc
import pytest
import sqlalchemy as sa
from kafka_probe import read_since
from waiting import wait_for

from longtail import topics
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.common.v1 import common_pb2 as C
from longtail.config import S3Settings, load
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.kafka import Producer
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.registry import LABEL_STORE
from longtail.storage import ObjectStore

from label_store import db, schema
from label_store.store import LabelStore
from label_store.tx import StoreError
from longtail_dev.supervisor import ServiceProcess

SERVICE = LABEL_STORE.grpc
SECRET = "label-store-test-operator-secret-0123456789"
AUTH = [("authorization", f"Bearer {issue_token('alice', SECRET, audience=OPERATOR_AUDIENCE)}")]


def as_labeller(name: str, role: str = "labeller") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {issue_token(name, SECRET, audience=OPERATOR_AUDIENCE, roles=(role,))}")]


def sid(run: str, i: int) -> str:
    return hashlib.sha256(f"{run}/{i}".encode()).hexdigest()


def stop_sign(occlusion="none") -> C.TaskOutput:
    out = C.TaskOutput(detection=C.DetectionOutput())
    d = out.detection.detections.add(cls="stop_sign", confidence=1.0, box=C.BoundingBox(x_min=0.1, y_min=0.1, x_max=0.3, y_max=0.3))
    d.attributes.update({"occlusion": occlusion, "mount": "pole", "modifier": "none", "temporary": "false"})
    return out


@contextmanager
def fresh_database(kind: str, postgres_url: str, tmp_path):
    """A database of its own for one test: a new SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'labels-{uuid.uuid4().hex[:6]}.db'}"
        return
    name = f"lt_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield postgres_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, postgres, tmp_path):
    with fresh_database(request.param, postgres, tmp_path) as url:
        yield url


@pytest.fixture
def objects(s3):
    store = ObjectStore(load(S3Settings))
    store.ensure_bucket()
    return store


@pytest.fixture
def store(database_url, objects):
    engine = db.create_engine(database_url)
    db.migrate(engine)
    s = LabelStore(engine, objects)
    s.tasks.ensure(schema.default_tasks())
    yield s
    engine.dispose()


def register(store, run, n):
    return store.samples.register([L.Sample(sample_id=sid(run, i), object_key=f"snapshots/{run}/{i}", bucket="longtail", content_type="image/png") for i in range(n)])


# ---------------------------------------------------------------------------------------------
# queue semantics on both databases
# ---------------------------------------------------------------------------------------------


def test_concurrent_labellers_never_share_a_live_lease_and_lose_nothing(store, database_url):
    """16 labellers, each with its own engine (connection pool), on 150 items; a fifth of the
    leases are abandoned (a labeller crashing) and must come back after expiring."""
    run, n = uuid.uuid4().hex[:8], 150
    register(store, run, n)
    errors: list[BaseException] = []
    refused = []

    def labeller(k: int) -> None:
        engine = db.create_engine(database_url, pool_size=2)
        mine = LabelStore(engine)
        rng = random.Random(k)
        try:
            while True:
                lease, _ = mine.queue.next_task("stop_sign", f"l{k}", 0.6)
                if lease is None:
                    if mine.tasks.counts("stop_sign").leased == 0:
                        return
                    time.sleep(0.1)  # abandoned leases still running: they will come back
                    continue
                if rng.random() < 0.2:
                    continue  # crash: never submit, never release
                try:
                    mine.queue.submit_label(lease.lease_id, lease.lease_id, L.Label(annotation=stop_sign()))
                except StoreError as exc:  # slow enough to lose the lease: refused, not lost
                    assert exc.code == "FAILED_PRECONDITION", exc
                    refused.append(lease.lease_id)
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=labeller, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with store.tx.engine.connect() as conn:
        items = {r.id: r for r in conn.execute(sa.select(db.queue_items).where(db.queue_items.c.task == "stop_sign"))}
        label_rows = list(conn.execute(sa.select(db.labels.c.sample_id, db.labels.c.created_at_us, db.labels.c.lease_id).where(db.labels.c.task == "stop_sign")))
        lease_rows = list(conn.execute(sa.select(db.leases).order_by(db.leases.c.item_id, db.leases.c.created_at_us)))
    assert len(items) == n and all(i.queue == "done" for i in items.values())  # none lost
    assert sorted(r.sample_id for r in label_rows) == sorted(sid(run, i) for i in range(n))  # each labelled exactly once
    fulfilled_at = {r.lease_id: r.created_at_us for r in label_rows}
    by_item: dict[int, list] = {}
    for lease in lease_rows:
        by_item.setdefault(lease.item_id, []).append(lease)
    abandoned = 0
    for item_id, chain in by_item.items():
        assert chain[-1].state == "fulfilled", chain  # the label came from the last lease
        for prev, nxt in zip(chain, chain[1:]):
            end = fulfilled_at.get(prev.lease_id, prev.expires_at_us)
            assert nxt.created_at_us >= end, f"item {item_id}: lease {nxt.lease_id} granted while {prev.lease_id} was live"
            abandoned += 1
    assert abandoned > 0  # the expiry path was exercised


def test_expired_lease_returns_the_item(store):
    run = uuid.uuid4().hex[:8]
    register(store, run, 1)
    first, _ = store.queue.next_task("stop_sign", "alice", 0.3)
    assert store.queue.next_task("stop_sign", "bob", 0.3)[0] is None
    time.sleep(0.4)
    second, _ = store.queue.next_task("stop_sign", "bob", 30)
    assert second.sample.sample_id == first.sample.sample_id
    with pytest.raises(StoreError) as err:
        store.queue.submit_label(first.lease_id, "k", L.Label(annotation=stop_sign()))
    assert err.value.code == "FAILED_PRECONDITION"
    assert store.queue.submit_label(second.lease_id, "k", L.Label(annotation=stop_sign()))[1] is False


def test_dataset_rebuild_reproduces_the_manifest_hash(store, objects):
    run = uuid.uuid4().hex[:8]
    register(store, run, 30)
    for i in range(30):
        lease, _ = store.queue.next_task("stop_sign", "alice", 60)
        store.queue.submit_label(lease.lease_id, "k", L.Label(annotation=stop_sign("foliage" if i % 3 == 0 else "none")))
    name = f"stop-signs-{run}"
    v1, existed = store.datasets.create(name, ["stop_sign"], L.SampleFilter(), L.SplitSpec(val_fraction=0.2, test_fraction=0.2))
    assert not existed and v1.version == 1 and v1.label_count == 30
    assert sum((v1.split_counts.train, v1.split_counts.val, v1.split_counts.test)) == 30
    data = objects.get(v1.manifest_key)
    assert hashlib.sha256(data).hexdigest() == v1.manifest_sha256
    again, existed = store.datasets.create(name, ["stop_sign"], L.SampleFilter(), L.SplitSpec(val_fraction=0.2, test_fraction=0.2))
    assert existed and again.version == 1  # nothing changed: same manifest, no new version

    register(store, run, 31)  # one more sample, labelled: version 2
    lease, _ = store.queue.next_task("stop_sign", "alice", 60)
    store.queue.submit_label(lease.lease_id, "k", L.Label(annotation=stop_sign()))
    v2, _ = store.datasets.create(name, ["stop_sign"], L.SampleFilter(), L.SplitSpec(val_fraction=0.2, test_fraction=0.2))
    assert v2.version == 2 and v2.label_count == 31
    splits_v1 = {line.split(b'"split":"')[1].split(b'"')[0] for line in data.splitlines()[1:]}
    assert splits_v1 <= {b"train", b"val", b"test"}

    # Rebuild v1 after the store moved on, and after losing its manifest object.
    ds, digest, matches, reuploaded = store.datasets.rebuild(name, 1)
    assert (digest, matches, reuploaded) == (v1.manifest_sha256, True, False)
    objects.client.remove_object(objects.bucket, v1.manifest_key)
    ds, digest, matches, reuploaded = store.datasets.rebuild(name, 1)
    assert matches and reuploaded
    assert objects.get(v1.manifest_key) == data  # bit for bit
    assert [d.version for d in store.datasets.list(name)[0]] == [2, 1]


# ---------------------------------------------------------------------------------------------
# the service as a process on real Kafka
# ---------------------------------------------------------------------------------------------


def snapshot(run: str, i: int) -> fleet_events.SnapshotUploaded:
    e = fleet_events.SnapshotUploaded(
        snapshot_id=sid(run, i),
        vehicle_id=f"ls-{run}",
        frame_id=f"ls-{run}:{i}",
        trigger_id="occluded-stop",
        trigger_version=2,
        fire_id=f"f{i}",
        object_key=f"snapshots/{run}/{i}.png",
        bucket="longtail",
        size_bytes=100,
        content_type="image/png",
    )
    e.captured_at.GetCurrentTime()
    e.metadata.detections.add(cls="stop_sign", confidence=0.4)
    return e


def start(database_url: str, group: str) -> ServiceProcess:
    env = {"OPERATOR_TOKEN_SECRET": SECRET, "DATABASE_URL": database_url, "LABEL_STORE_CONSUMER_GROUP": group}
    return ServiceProcess("label_store", SERVICE, env).start(timeout=90)


def stub(service) -> labels_pb2_grpc.LabelStoreServiceStub:
    return labels_pb2_grpc.LabelStoreServiceStub(service.channel())


def samples_of(api, run: str) -> list[L.Sample]:
    out, token = [], ""
    while True:
        r = api.ListSamples(L.ListSamplesRequest(filter=L.SampleFilter(vehicle_ids=[f"ls-{run}"]), page_size=100, page_token=token), timeout=10)
        out += r.samples
        token = r.next_page_token
        if not token:
            return out


def test_service_registers_snapshots_idempotently_and_survives_kill(database_url, kafka, s3):
    run, group = uuid.uuid4().hex[:8], f"label-store-it-{uuid.uuid4().hex[:6]}"
    since = int(time.time() * 1000) - 1000
    producer = Producer(kafka, "label-store-test")
    for i in range(20):
        for _ in range(2):  # at-least-once upstream: every snapshot twice
            producer.produce(topics.SNAPSHOTS, sid(run, i), snapshot(run, i))
    bad_key = f"bad-{run}"
    producer.produce_bytes(topics.SNAPSHOTS.name, bad_key, b"\xff\xffnot a protobuf")
    invalid = snapshot(run, 99)
    invalid.snapshot_id = "NOT-A-HASH"
    producer.produce(topics.SNAPSHOTS, "NOT-A-HASH", invalid)
    producer.flush()

    service = start(database_url, group)
    try:
        api = stub(service)
        wait_for(lambda: len(samples_of(api, run)) == 20, what="20 samples")
        sample = api.GetSample(L.GetSampleRequest(sample_id=sid(run, 3)), timeout=10).sample
        assert sample.provenance.trigger_id == "occluded-stop" and sample.provenance.trigger_version == 2
        assert sorted(sample.tasks) == ["stop_sign", "traffic_light"] and sample.car_detections[0].confidence == pytest.approx(0.4)

        # precise status codes over gRPC
        def code(call, request, metadata=None):
            with pytest.raises(grpc.RpcError) as err:
                call(request, metadata=metadata, timeout=10)
            return err.value.code()

        me = as_labeller(f"h-{run}")
        assert code(api.GetNextTask, L.GetNextTaskRequest(task="no_such_task"), me) == grpc.StatusCode.NOT_FOUND
        assert code(api.UpsertTask, L.UpsertTaskRequest(task=schema.default_tasks()[0])) == grpc.StatusCode.UNAUTHENTICATED
        assert code(api.UpsertTask, L.UpsertTaskRequest(task=schema.default_tasks()[0]), me) == grpc.StatusCode.PERMISSION_DENIED  # a labeller changes no task
        assert code(api.UpsertTask, L.UpsertTaskRequest(task=L.Task(name="Bad Name")), AUTH) == grpc.StatusCode.INVALID_ARGUMENT
        # labellers are authenticated, and label as themselves only
        assert code(api.GetNextTask, L.GetNextTaskRequest(task="stop_sign")) == grpc.StatusCode.UNAUTHENTICATED
        assert code(api.GetNextTask, L.GetNextTaskRequest(task="stop_sign"), AUTH) == grpc.StatusCode.PERMISSION_DENIED  # an operator does not label
        assert code(api.GetNextTask, L.GetNextTaskRequest(task="stop_sign", labeller_id="someone-else"), me) == grpc.StatusCode.PERMISSION_DENIED
        assert code(api.GetNextTask, L.GetNextTaskRequest(task="stop_sign", review=True), me) == grpc.StatusCode.PERMISSION_DENIED  # the review queue is for reviewers

        acknowledged, leased_samples = [], []
        for i in range(5):
            lease = api.GetNextTask(L.GetNextTaskRequest(task="stop_sign"), metadata=me, timeout=10).lease
            assert lease.labeller_id == f"h-{run}"  # from the token
            if i == 0:
                assert code(api.SubmitLabel, L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key="k", label=L.Label(annotation=stop_sign("leaves"))), me) == grpc.StatusCode.INVALID_ARGUMENT
                assert code(api.SubmitLabel, L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key="k", label=L.Label(labeller_id="mallory", annotation=stop_sign())), me) == grpc.StatusCode.PERMISSION_DENIED
                assert code(api.SubmitLabel, L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key="k", label=L.Label(annotation=stop_sign())), AUTH) == grpc.StatusCode.PERMISSION_DENIED
            r = api.SubmitLabel(L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key="k", label=L.Label(annotation=stop_sign())), metadata=me, timeout=10)
            assert r.label.labeller_id == f"h-{run}"
            assert api.SubmitLabel(L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key="k", label=L.Label(annotation=stop_sign())), metadata=me, timeout=10).duplicate
            if i == 0:
                assert code(api.SubmitLabel, L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key="k2", label=L.Label(annotation=stop_sign())), me) == grpc.StatusCode.ALREADY_EXISTS
            acknowledged.append(r.label.label_id)
            leased_samples.append(lease.sample.sample_id)  # may be another run's sample: the topic is shared
    finally:
        service.proc.kill()  # kill -9: no drain, no outbox flush
        service.proc.wait()

    for i in range(20, 25):  # produced while the service is down
        producer.produce(topics.SNAPSHOTS, sid(run, i), snapshot(run, i))
    producer.flush()
    service = start(database_url, group)
    try:
        api = stub(service)
        wait_for(lambda: len(samples_of(api, run)) == 25, what="25 samples after restart")
        stored = {lb.label_id for s in leased_samples for lb in api.GetSample(L.GetSampleRequest(sample_id=s), timeout=10).labels}
        assert set(acknowledged) <= stored

        def events():
            registered = {k for k, v in read_since(kafka, topics.SAMPLES_REGISTERED, since) if v.sample.provenance.vehicle_id == f"ls-{run}"}
            labelled = {v.label.label_id for _, v in read_since(kafka, topics.LABELS_CREATED, since)}
            return (registered, labelled) if len(registered) == 25 and set(acknowledged) <= labelled else None

        registered, labelled = wait_for(events, what="SampleRegistered and LabelCreated events")
        assert registered == {sid(run, i) for i in range(25)}
        created = [v for _, v in read_since(kafka, topics.LABELS_CREATED, since)]
        ours = {sid(run, i) for i in range(25)}  # the queue may also hand out other tests' samples
        provenance = {c.provenance.trigger_id for c in created if c.label.label_id in acknowledged and c.label.sample_id in ours}
        assert provenance <= {"occluded-stop"}
        assert all(c.provenance.vehicle_id == f"ls-{run}" for c in created if c.label.sample_id in ours)

        def dead():
            letters = [v for _, v in read_since(kafka, topics.DEAD_LETTERS, since)]
            return [d for d in letters if d.consumer_group == group and d.key in (bad_key.encode(), b"NOT-A-HASH")]

        letters = wait_for(lambda: len(dead()) >= 2 and dead(), what="two dead letters")
        assert {d.key for d in letters} == {bad_key.encode(), b"NOT-A-HASH"}
        assert any("sha256" in d.error for d in letters)
    finally:
        assert service.stop() == 0
        producer.close()
