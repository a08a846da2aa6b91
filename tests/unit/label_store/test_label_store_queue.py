"""Queue semantics on SQLite: leases, expiry, idempotent submit, precise refusals, disagreement."""

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from label_store_helpers import register, sid, stop_sign

from longtail.common.v1 import common_pb2 as C
from longtail.inference.v1 import events_pb2 as inference_events
from longtail.labels.v1 import labels_pb2 as L

from label_store import db
from label_store.tx import StoreError


def code_of(fn, *args):
    with pytest.raises(StoreError) as err:
        fn(*args)
    return err.value.code, str(err.value)


def test_migrations_create_exactly_the_declared_schema(store):
    with store.tx.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), db.metadata) == []
    assert db.migrate(store.tx.engine) == "0001"  # idempotent


def test_registration_is_idempotent_and_enqueues_every_task(store):
    assert [c for _, c in register(store, 3)] == [True] * 3
    assert [c for _, c in register(store, 4)] == [False] * 3 + [True]
    sample, _, states = store.samples.get(sid(0))
    assert sorted(sample.tasks) == ["stop_sign", "traffic_light"] and len(states) == 2
    assert store.tasks.counts("stop_sign").queue_depth == 4
    events = store.outbox.batch()
    assert [t for _, t, _, _ in events].count("labels.samples.v1") == 4  # one event per new sample, none for repeats


def test_invalid_sample_is_refused(store):
    assert code_of(store.samples.register, [L.Sample(sample_id="NOT-A-HASH", object_key="k")])[0] == "INVALID_ARGUMENT"
    assert "object_key" in code_of(store.samples.register, [L.Sample(sample_id=sid(1))])[1]


def test_priority_order_and_uncertainty(store):
    register(store, 3)
    store.samples.record_predictions(inference_events.InferenceResult(snapshot_id=sid(2), model=C.ModelRef(name="m", version=1), predictions={"stop_sign": C.TaskPrediction(task="stop_sign", uncertainty=C.Uncertainty(entropy=0.69))}))
    lease, _ = store.queue.next_task("stop_sign", "alice", 60)
    assert lease.sample.sample_id == sid(2)  # most uncertain first
    assert lease.pre_label.uncertainty.entropy == pytest.approx(0.69)
    assert store.queue.next_task("stop_sign", "bob", 60)[0].sample.sample_id == sid(0)  # then registration order


def test_lease_is_exclusive_and_expiry_returns_the_item(store, clock):
    register(store, 1)
    first, depth = store.queue.next_task("stop_sign", "alice", 10)
    assert first is not None and depth == 0
    assert store.queue.next_task("stop_sign", "bob", 10)[0] is None  # no second live lease
    clock.t += 10.5
    second, _ = store.queue.next_task("stop_sign", "bob", 10)
    assert second.sample.sample_id == first.sample.sample_id  # expired: back in the queue
    code, message = code_of(store.queue.submit_label, first.lease_id, "k", L.Label(annotation=stop_sign()))
    assert code == "FAILED_PRECONDITION" and "expired" in message  # stale lease
    label, duplicate = store.queue.submit_label(second.lease_id, "k", L.Label(annotation=stop_sign()))
    assert not duplicate and label.labeller_id == "bob"


def test_submit_is_idempotent_and_double_submit_is_refused(store):
    register(store, 2)
    lease, _ = store.queue.next_task("stop_sign", "alice", 60)
    a, dup_a = store.queue.submit_label(lease.lease_id, "key-1", L.Label(annotation=stop_sign()))
    b, dup_b = store.queue.submit_label(lease.lease_id, "key-1", L.Label(annotation=stop_sign("foliage")))  # a retry
    assert (dup_a, dup_b) == (False, True) and a == b
    code, message = code_of(store.queue.submit_label, lease.lease_id, "key-2", L.Label(annotation=stop_sign()))
    assert code == "ALREADY_EXISTS" and a.label_id in message
    assert [t for _, t, _, _ in store.outbox.batch()].count("labels.labels.v1") == 1


@pytest.mark.parametrize(
    "label,code,fragment",
    [
        (L.Label(annotation=stop_sign("leaves")), "INVALID_ARGUMENT", "detections[0].attributes.occlusion"),
        (L.Label(task="traffic_light", annotation=stop_sign()), "INVALID_ARGUMENT", "label.task"),
        (L.Label(sample_id="ab" * 32, annotation=stop_sign()), "INVALID_ARGUMENT", "label.sample_id"),
        (L.Label(labeller_id="mallory", annotation=stop_sign()), "PERMISSION_DENIED", "alice"),
    ],
)
def test_bad_labels_are_refused_precisely(store, label, code, fragment):
    register(store, 1)
    lease, _ = store.queue.next_task("stop_sign", "alice", 60)
    got, message = code_of(store.queue.submit_label, lease.lease_id, "k", label)
    assert got == code and fragment in message
    assert store.queue.submit_label(lease.lease_id, "k", L.Label(annotation=stop_sign()))[0].task == "stop_sign"  # the lease is still good


def test_unknown_things(store):
    assert code_of(store.queue.next_task, "no_such_task", "alice", 60)[0] == "NOT_FOUND"
    assert code_of(store.queue.submit_label, "no-such-lease", "k", L.Label())[0] == "NOT_FOUND"
    assert code_of(store.queue.next_task, "stop_sign", "", 60)[0] == "INVALID_ARGUMENT"
    assert code_of(store.queue.next_task, "stop_sign", "alice", 10 * 24 * 3600)[0] == "INVALID_ARGUMENT"
    assert code_of(store.queue.submit_label, "x", "", L.Label())[0] == "INVALID_ARGUMENT"


def test_release_returns_the_item_and_invalidates_the_lease(store):
    register(store, 1)
    lease, _ = store.queue.next_task("stop_sign", "alice", 60)
    assert store.queue.release_lease(lease.lease_id, "unreadable")
    assert not store.queue.release_lease(lease.lease_id)
    assert code_of(store.queue.submit_label, lease.lease_id, "k", L.Label(annotation=stop_sign()))[0] == "FAILED_PRECONDITION"
    assert store.queue.next_task("stop_sign", "bob", 60)[0].sample.sample_id == sid(0)


def _labels_per_sample(store, n):
    task = {t.name: t for t in store.tasks.list()}["stop_sign"]
    task.labels_per_sample = n
    store.tasks.upsert(task)


def _label(store, who, output):
    lease, _ = store.queue.next_task("stop_sign", who, 60)
    assert lease is not None, who
    return store.queue.submit_label(lease.lease_id, who, L.Label(annotation=output))[0]


def test_two_labellers_agree(store):
    _labels_per_sample(store, 2)
    register(store, 1)
    _label(store, "alice", stop_sign())
    assert store.queue.next_task("stop_sign", "alice", 60)[0] is None  # not the same labeller twice
    final = _label(store, "bob", stop_sign(box=(0.11, 0.1, 0.31, 0.3)))
    state = {s.task: s for s in store.samples.get(sid(0))[2]}["stop_sign"]
    assert (state.resolution, state.disagreement, state.labels_done) == (L.RESOLUTION_AGREED, False, 2)
    assert state.final_label_id != final.label_id  # the first of the agreeing labels


def test_disagreement_goes_to_review_and_a_reviewer_decides(store):
    _labels_per_sample(store, 2)
    register(store, 1)
    _label(store, "alice", stop_sign())
    _label(store, "bob", stop_sign("foliage"))
    state = {s.task: s for s in store.samples.get(sid(0))[2]}["stop_sign"]
    assert state.in_review and state.disagreement and state.resolution == L.RESOLUTION_UNSPECIFIED
    assert store.tasks.counts("stop_sign").review_depth == 1
    assert store.queue.next_task("stop_sign", "alice", 60, review=True)[0] is None  # not one of the disagreeing labellers
    review, _ = store.queue.next_task("stop_sign", "carol", 60, review=True)
    assert len(review.previous_labels) == 2 and review.review
    final = store.queue.submit_label(review.lease_id, "r", L.Label(annotation=stop_sign("foliage")))[0]
    state = {s.task: s for s in store.samples.get(sid(0))[2]}["stop_sign"]
    assert (state.resolution, state.final_label_id, state.disagreement) == (L.RESOLUTION_REVIEW, final.label_id, True)


def test_three_labellers_majority(store):
    _labels_per_sample(store, 3)
    register(store, 1)
    a = _label(store, "alice", stop_sign("foliage"))
    _label(store, "bob", stop_sign())
    _label(store, "carol", stop_sign("foliage"))
    state = {s.task: s for s in store.samples.get(sid(0))[2]}["stop_sign"]
    assert (state.resolution, state.disagreement, state.final_label_id) == (L.RESOLUTION_MAJORITY, True, a.label_id)


def test_concurrent_labellers_on_sqlite(store):
    """Threads racing for leases: every item labelled exactly once, none handed out twice."""
    register(store, 60)
    seen, lock, errors = [], threading.Lock(), []

    def labeller(name):
        try:
            while True:
                lease, _ = store.queue.next_task("stop_sign", name, 60)
                if lease is None:
                    return
                with lock:
                    seen.append(lease.sample.sample_id)
                store.queue.submit_label(lease.lease_id, lease.lease_id, L.Label(annotation=stop_sign()))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=labeller, args=(f"l{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(seen) == sorted(sid(i) for i in range(60))  # none twice, none lost
    assert store.tasks.counts("stop_sign").done == 60


def test_a_filter_can_name_the_samples(store):
    register(store, 5)
    picked, _ = store.samples.list(L.SampleFilter(sample_ids=[sid(1), sid(3), "not-registered"]))
    assert sorted(s.sample_id for s in picked) == sorted([sid(1), sid(3)])
    everything, _ = store.samples.list(L.SampleFilter())
    assert len(everything) == 5
    with pytest.raises(StoreError) as too_many:
        store.samples.list(L.SampleFilter(sample_ids=[str(i) for i in range(10_001)]))
    assert too_many.value.code == "INVALID_ARGUMENT" and "sample_ids" in str(too_many.value)


def test_an_upload_of_a_higher_priority_trigger_is_labelled_first(store):
    from longtail.fleet.v1 import events_pb2 as fleet_events

    from label_store.aggregates.samples import sample_from_snapshot

    def snapshot(i: int, trigger: str, priority: int):
        return sample_from_snapshot(
            fleet_events.SnapshotUploaded(snapshot_id=sid(i), vehicle_id="car-1", frame_id=f"car-1:{i}", trigger_id=trigger, object_key=f"snapshots/{sid(i)}.png", bucket="b", content_type="image/png", size_bytes=10, priority=priority)
        )

    store.samples.register([snapshot(0, "random", 0), snapshot(1, "detector-x", 3), snapshot(2, "unsure", 1)])
    order = []
    for _ in range(3):
        lease, _ = store.queue.next_task("stop_sign", "alice", 60)
        order.append(lease.sample.provenance.trigger_id)
    assert order == ["detector-x", "unsure", "random"]


def test_a_task_declared_later_gets_every_sample_but_the_unit_test_cases(store):
    register(store, 4)
    store.suites.upsert(f"suite: stop_sign.cases\ntask: stop_sign\npredicate: any(d.cls == stop_sign)\ncases:\n  - sample: {sid(1)}\n")
    store.tasks.upsert(L.Task(name="caution_lights", prototype=C.TASK_PROTOTYPE_DETECTION, classes=["vehicle"]))
    assert store.tasks.counts("caution_lights").queue_depth == 3  # no dataset takes a suite case: its label would be wasted
    assert store.tasks.counts("stop_sign").queue_depth == 4


def test_the_queue_is_listed_in_priority_order_without_leasing(store):
    """ListQueue: what a front end with its own task list (Label Studio's bridge) shows."""
    register(store, 5, priority=0.0)
    for i, p in enumerate([0.1, 0.9, 0.5, 0.0, 0.7]):
        with store.tx.engine.begin() as conn:
            conn.execute(db.queue_items.update().where(db.queue_items.c.sample_id == sid(i)).values(priority=p))
    lease, _ = store.queue.next_task("stop_sign", "lena", sample_id=sid(4))
    assert lease.sample.sample_id == sid(4)  # the item picked, not the highest-priority one
    first, token = store.queue.waiting("stop_sign", page_size=2)
    rest, end = store.queue.waiting("stop_sign", page_size=2, page_token=token)
    last, none = store.queue.waiting("stop_sign", page_size=2, page_token=end)
    order = [i.sample.sample_id for i in first + rest + last]
    assert order == [sid(1), sid(4), sid(2), sid(0), sid(3)] and none == ""
    assert [i.leased for i in first + rest + last] == [False, True, False, False, False]
    assert store.queue.next_task("stop_sign", "lena", sample_id=sid(4))[0] is None  # leased: no second lease
    assert code_of(store.queue.waiting, "stop_sign", False, 501)[0] == "INVALID_ARGUMENT"
    assert code_of(store.queue.waiting, "stop_sign", False, 10, "garbage")[0] == "INVALID_ARGUMENT"
    assert code_of(store.queue.waiting, "no_such_task")[0] == "NOT_FOUND"
