"""Runs trained by a torchrun job against the real S3 server (docs/trainer.md, "Run backends").

- `python -m trainer.train_job --run-id <id>` under `torchrun --nproc-per-node 2 --max-restarts 1`
  reads its input from the object store and checkpoints there; a worker killed in epoch 2 is
  restarted, the job resumes from the object-store checkpoint of epoch 1 and ends with exactly the
  weights of the uninterrupted job; the job's files are gone afterwards.
- The trainer service with TRAINER_BACKEND=torchrun (a real trainer process, a real label store,
  Kafka, S3): the same run (same base model, data, seed and global batch) trained by two DDP
  processes and, with the hyperparameter `backend: local`, in the trainer process reaches the same
  gate decision and suite pass rates within SUITE_TOLERANCE.

Marked `distributed` as well (torchrun, gloo on the CPU)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import torch
from test_trainer import AUTH, SECRET, World_, hp, start, start_group_at_the_end

from longtail import model_repo, topics
from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2 as C
from longtail.config import S3Settings, load
from longtail.kafka import Producer
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.model import fitting
from longtail.models.v1 import trainer_pb2 as T
from longtail.models.v1 import trainer_pb2_grpc
from longtail.registry import LABEL_STORE, TRAINER
from longtail.storage import ObjectStore
from longtail.synthetic.frames import occluded_only, sample_frames
from longtail.synthetic.world import STOP_SIGN, World, WorldConfig

from longtail_dev.supervisor import ServiceProcess
from trainer import backends, data, jobs, training

pytestmark = pytest.mark.distributed
REPO_TASKS = Path(__file__).resolve().parents[2] / "tasks.yaml"
PLAIN = "any(d.cls == stop_sign and d.conf >= 0.5)"
# Suite pass rates, 2 DDP processes vs 1 (same base, data, seed, global batch), absolute: on 12
# cases one case is 0.083. The runs differ by batch-norm statistics per rank and the mean of the
# shards' losses (docs/trainer.md). Measured: 6/12 and 6/12, both refused by the gate (the base
# passes 8/12), final training loss 1.628 vs 1.509 (7.9 %); 2 cases allowed.
SUITE_TOLERANCE = 2 / 12


@pytest.fixture
def objects(s3) -> ObjectStore:
    store = ObjectStore(load(S3Settings), service="trainer-jobs-it")
    store.ensure_bucket()
    return store


def job_input(run_id: str) -> jobs.JobInput:
    tasks = [d.spec for d in tasks_mod.load()]
    split = data.generated(tasks, 160, seed=4)["train"]
    model, _ = training.build_model(tasks, None, seed=4)
    return jobs.JobInput.of(run_id, model, split.images, fitting.encode_targets(model.tasks, split.annotations), epochs=3, batch_size=32, lr=2e-3, seed=4, train_heads=[], processes=2)


def test_a_killed_worker_resumes_from_the_object_store_checkpoint_bit_identically(objects, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).resolve().parents[2] / "services"), os.environ.get("PYTHONPATH", "")]))
    run = f"it-job-{uuid.uuid4().hex[:8]}"
    whole = backends.TorchrunBackend(objects, processes=2, max_restarts=0, threads=2, log_dir=tmp_path, poll_s=0.2).train(job_input(run), lambda *a: None)
    marker = tmp_path / "failed-once"
    progress: list[tuple[float, int | None]] = []
    interrupted = backends.TorchrunBackend(objects, processes=2, max_restarts=1, threads=2, log_dir=tmp_path, poll_s=0.2, extra_args=("--fail-at-epoch", "2", "--fail-marker", str(marker))).train(
        job_input(run), lambda fraction, epoch, loss: progress.append((fraction, epoch))
    )
    assert marker.exists()  # the worker did die
    report = interrupted.report
    assert report["world_size"] == 2 and report["backend"] == "torchrun" and report["restart_count"] == 1 and report["resumed_from_epoch"] == 1
    assert {r["state_dict_sha256"] for r in report["ranks"]} == {whole.report["state_dict_sha256"]}  # both ranks, as uninterrupted
    assert all(torch.equal(interrupted.weights[k], v) for k, v in whole.weights.items())
    assert interrupted.history == whole.history and len(whole.history) == 3
    assert [e for _, e in progress] == sorted(e for _, e in progress) and progress[-1][1] == 3
    assert objects.list(f"{jobs.PREFIX}/{run}/") == []  # nothing left behind


def test_a_run_without_its_input_fails_with_the_reason(objects, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).resolve().parents[2] / "services"), os.environ.get("PYTHONPATH", "")]))
    backend = backends.TorchrunBackend(objects, processes=2, max_restarts=0, threads=2, log_dir=tmp_path, poll_s=0.2)
    put_at = objects.put_at

    def lose_the_input(key, data, *a, **kw):  # in this process only: the job finds no input
        if not key.endswith(jobs.INPUT):
            put_at(key, data, *a, **kw)

    monkeypatch.setattr(objects, "put_at", lose_the_input)
    with pytest.raises(backends.JobFailed, match=r"(?s)torchrun exited with status 1 .*the input of run it-job-\w+ is not in the object store"):
        backend.train(job_input(f"it-job-{uuid.uuid4().hex[:8]}"), lambda *a: None)


@pytest.fixture
def torchrun_trainer(kafka, s3, tmp_path):
    run = uuid.uuid4().hex[:8]
    objects = ObjectStore(load(S3Settings))
    objects.ensure_bucket()
    start_group_at_the_end(kafka, f"label-store-jobs-{run}", topics.SNAPSHOTS.name)
    label_store = ServiceProcess(
        LABEL_STORE.package, LABEL_STORE.grpc, {"OPERATOR_TOKEN_SECRET": SECRET, "DATABASE_URL": f"sqlite:///{tmp_path / 'labels.db'}", "LABEL_STORE_CONSUMER_GROUP": f"label-store-jobs-{run}", "LABEL_STORE_DATA_DIR": str(tmp_path)}
    ).start(timeout=90)
    trainer = None
    try:
        trainer = ServiceProcess(
            TRAINER.package,
            TRAINER.grpc,
            {
                "OPERATOR_TOKEN_SECRET": SECRET,
                "LABEL_STORE_ADDR": label_store.address,
                "TRAINER_TASKS_FILE": str(REPO_TASKS),
                "TRAINER_MODEL_NAME": f"jobs-{run}",
                "TRAINER_LABEL_THRESHOLD": "0",
                "TRAINER_THREADS": "2",
                "TRAINER_CONSUMER_GROUP": f"trainer-jobs-{run}",
                "TRAINER_BACKEND": "torchrun",
                "TRAINER_PROCESSES": "2",
            },
        ).start(timeout=120)
        yield {"run": run, "objects": objects, "labels": labels_pb2_grpc.LabelStoreServiceStub(label_store.channel()), "api": trainer_pb2_grpc.TrainerServiceStub(trainer.channel())}
    finally:
        if trainer is not None:
            trainer.stop()
        label_store.stop()


def big_stop(target, gt):
    return any(o.cls == "stop_sign" and o.box_px >= 12 and not o.truncated for o in gt)


def test_two_ddp_processes_reach_the_gate_decision_and_suite_pass_rates_of_one(torchrun_trainer, kafka):
    api, labels, objects, run = torchrun_trainer["api"], torchrun_trainer["labels"], torchrun_trainer["objects"], torchrun_trainer["run"]
    name = f"jobs-{run}"
    w = World_(objects, labels)
    plain = sample_frames(World(WorldConfig().common_only(), seed=881), 6, seed=5, mix={STOP_SIGN: 1.0}, distance=(4.0, 12.0), accept=big_stop, max_tries=50)
    occl = sample_frames(World(occluded_only(), seed=882), 6, seed=6, mix={STOP_SIGN: 1.0}, distance=(4.0, 12.0), accept=big_stop, max_tries=50)
    ids = w.register(plain.images, plain.truths, f"jobs-{run}-suite") + w.register(occl.images, occl.truths, f"jobs-{run}-suite")
    yaml = f"suite: jobs{run}.signs\ntask: stop_sign\npredicate: {PLAIN}\ncases:\n" + "".join(f"  - sample: {i}\n" for i in ids)
    labels.UpsertSuite(L.UpsertSuiteRequest(yaml=yaml), metadata=AUTH, timeout=10)

    from fleet_sim.bootstrap import train_on_world

    base = train_on_world(WorldConfig().common_only(), seed=1, samples=300, epochs=3)
    pv = model_repo.publish(objects, base, name, 1)
    producer = Producer(kafka, "trainer-jobs-it")
    producer.produce(topics.MODELS_PUBLISHED, name, model_repo.published_event(pv, C.MODEL_ROLE_PRODUCTION, objects.bucket))
    producer.close()

    def spec(**extra) -> T.RunSpec:  # from v1 on generated frames: the same run twice
        return T.RunSpec(model_name=name, base_model=C.ModelRef(name=name, version=1), seed=7, epochs=6, hyperparameters=hp(fallback_samples=640, fallback_world="default", batch_size=32, lr=0.003, **extra))

    deadline = time.monotonic() + 30
    while api.GetModel(T.GetModelRequest(model=C.ModelRef(name=name, version=1)), timeout=10).model.state != T.MODEL_STATE_PRODUCTION:
        assert time.monotonic() < deadline, "the trainer never saw the PRODUCTION publication"
        time.sleep(0.2)
    ddp = start(api, spec())  # TRAINER_BACKEND=torchrun, TRAINER_PROCESSES=2
    one = start(api, spec(backend="local"))
    for r in (ddp, one):
        assert r.status in (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED), r.error
    assert ddp.metrics["train/processes"] == 2 and one.metrics["train/processes"] == 1
    assert ddp.gate_report.accepted == one.gate_report.accepted, (list(ddp.gate_report.reasons), list(one.gate_report.reasons))
    rates = {r.run_id: {s.suite: (s.before_pass_rate, s.after_pass_rate) for s in r.gate_report.suites} for r in (ddp, one)}
    suite = f"jobs{run}.signs"
    assert rates[ddp.run_id][suite][0] == rates[one.run_id][suite][0]  # the same baseline
    assert abs(rates[ddp.run_id][suite][1] - rates[one.run_id][suite][1]) <= SUITE_TOLERANCE + 1e-9, rates
    loss = (ddp.metrics["train/loss"], one.metrics["train/loss"])
    after = (rates[ddp.run_id][suite][1], rates[one.run_id][suite][1])
    print(f"\n2 DDP processes vs 1: gate {ddp.gate_report.accepted} vs {one.gate_report.accepted}; pass rate {after[0]:.3f} vs {after[1]:.3f} (baseline {rates[one.run_id][suite][0]:.3f}, 12 cases); loss {loss[0]:.4f} vs {loss[1]:.4f}")
    assert abs(loss[0] - loss[1]) / loss[1] <= 0.30, loss  # the final epoch's training loss (tests/unit/trainer/test_trainer_ddp.py: LOSS_TOLERANCE)
    assert objects.list(f"{jobs.PREFIX}/{ddp.run_id}/") == []
    if ddp.status == T.RUN_STATUS_SUCCEEDED:  # what was published is what the two processes trained
        version = model_repo.load_version(objects, name, ddp.model.version)
        assert version.manifest["trainer"]["training"]["world_size"] == 2 and version.manifest["trainer"]["training"]["backend"] == "torchrun"
