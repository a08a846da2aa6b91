"""Data-parallel training (issue #21; docs/trainer.md, "Distributed training (torchrun)").

In-process and fast: `fitting.shard` splits every global batch exactly across the ranks, and a run
resumed from a per-epoch checkpoint ends bit-identical to the uninterrupted run.

Marked `distributed` (`pytest -m distributed`, or `-m "not distributed"` to leave them out): they
launch `python -m trainer.train_job` under `torchrun --standalone --nproc-per-node 2` (gloo on the
CPU; torchrun picks its own port) on 160 generated frames, 3 epochs, global batch 32, one thread
per process: every rank ends with the same weights, exactly those of the documented semantics
(emulated in one process), close to one process's; a worker killed mid-run is restarted and the job
resumes from its last checkpoint, ending with the uninterrupted job's weights; heads trained alone
under DDP move nothing else. About 40-50 s on two cores.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from longtail import tasks as tasks_mod
from longtail.model import fitting, torchscript

from trainer import data as data_mod
from trainer import training

SERVICES = Path(__file__).resolve().parents[3] / "services"
JOB = ["--samples", "160", "--epochs", "3", "--batch-size", "32", "--seed", "0", "--threads", "1"]
# Final-epoch mean training loss, 2 processes vs 1 (same data, seed, global batch), relative.
# Measured with these settings (docs/trainer.md): seed 0 (the test's) 10.2 %, seeds 1-4 1.4, 7.8,
# 6.6 and 19.5 %, two processes lower each time; 1 vs 2 threads in one process moves it < 0.6 %.
# The gap is the semantics, not noise (the two-process run is bit-identical to their one-process
# emulation): batch norm over each rank's 16 frames instead of 32 and the mean of the shards'
# masked means, which three epochs of a steep descent on 136 frames amplify. 0.30: three times
# the test's own gap, 1.5 times the worst of five seeds.
LOSS_TOLERANCE = 0.30


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("size", [2, 7, 8, 32, 33])
def test_every_global_batch_is_split_exactly_across_the_ranks(world_size, size):
    batch = torch.randperm(100, generator=torch.Generator().manual_seed(size))[:size]
    shares = [fitting.shard(batch, rank, world_size) for rank in range(world_size)]
    assert torch.equal(torch.cat(shares), batch)  # in rank order, nothing lost, nothing twice
    sizes = [len(s) for s in shares]
    assert sum(sizes) == size and max(sizes) - min(sizes) <= 1


def test_a_run_resumed_from_a_checkpoint_ends_bit_identical():
    tasks = [d.spec for d in tasks_mod.load()]
    split = data_mod.generated(tasks, 60, seed=2)["train"]
    kw = {"epochs": 3, "batch_size": 16, "lr": 2e-3, "seed": 2}
    whole, _ = training.build_model(tasks, None, seed=2)
    history = training.train(whole, split, **kw)
    saved: list[bytes] = []  # serialised at once, as train_job writes them: the state holds the live tensors
    first, _ = training.build_model(tasks, None, seed=2)
    training.train(first, split, **kw, on_checkpoint=lambda state: saved.append(_serialised(state)))
    checkpoints = [torch.load(io.BytesIO(b), weights_only=True) for b in saved]
    assert [c["epoch"] for c in checkpoints] == [1, 2, 3]
    # as in a fresh process: other initial weights and RNG state, the checkpoint of epoch 1 restores them
    torch.manual_seed(99)
    again, _ = training.build_model(tasks, None, seed=7)
    resumed = training.train(again, split, **kw, resume=checkpoints[0])
    assert torchscript.state_dict_sha256(again) == torchscript.state_dict_sha256(whole)
    assert resumed == history


def _serialised(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def job(out: Path, *extra: str, processes: int = 2, restarts: int = 0) -> tuple[dict, str]:
    """Run the training job (under torchrun when processes > 1); its result.json and its output."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SERVICES), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "LOG_FORMAT": "json",
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",  # restarts are unreliable without it (trainer.train_job.SHARED_STORE_WARNING)
    }
    command = [sys.executable, "-m", "trainer.train_job"]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), "--max-restarts", str(restarts), "-m", "trainer.train_job"]
    # its own session: on a timeout the workers go too, not only torchrun
    proc = subprocess.Popen([*command, *JOB, "--timeout-s", "60", "--out", str(out), *extra], env=env, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the job did not finish in 240 s:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    return json.loads((out / "result.json").read_text()), output


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The uninterrupted two-process job, shared by the tests that compare with it."""
    out = tmp_path_factory.mktemp("ddp") / "job"
    result, _ = job(out, "--checkpoint-dir", str(out / "checkpoints"))
    return {**result, "out": out}


def emulate_two_ranks(samples: int, epochs: int, batch_size: int, seed: int, lr: float = 2e-3) -> tuple[str, float]:
    """What two DDP ranks compute, in one process (the semantics `fitting.fit` documents): the
    single-process permutation and global batches, each split by `shard`; each share's loss
    backpropagated with weight 1/2 (DDP averages the ranks' gradients); rank 0's batch-norm running
    statistics kept; one optimizer and scheduler step per global batch. Returns the weights' hash
    and the last epoch's mean loss."""
    tasks = [d.spec for d in tasks_mod.load()]
    split = data_mod.generated(tasks, samples, seed)["train"]
    model, _ = training.build_model(tasks, None, seed)
    targets = fitting.encode_targets(model.tasks, split.annotations)
    x = torch.as_tensor(split.images)
    n = len(x)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(n / batch_size), pct_start=0.15)
    model.train()
    for _ in range(epochs):
        perm, losses = torch.randperm(n, generator=gen), []
        for i in range(0, n, batch_size):
            batch = perm[i : i + batch_size]
            if len(batch) < 4:
                continue
            opt.zero_grad(set_to_none=True)
            rank0_statistics = None
            for rank in (0, 1):
                share = fitting.shard(batch, rank, 2)
                if rank == 1:
                    rank0_statistics = [b.clone() for b in model.buffers()]
                loss, _ = fitting.compute_loss(model.tasks, model(x[share]), fitting._index_targets(targets, share))
                (loss / 2).backward()
                losses.append(float(loss.detach()))
            for b, kept in zip(model.buffers(), rank0_statistics or []):
                b.copy_(kept)
            opt.step()
            sched.step()
    model.eval()
    return torchscript.state_dict_sha256(model), sum(losses) / len(losses)


@pytest.mark.distributed
def test_two_processes_end_identical_as_documented_and_close_to_one(two_processes, tmp_path):
    two = two_processes
    assert two["world_size"] == 2 and two["backend"] == "gloo" and two["device"] == "cpu" and two["batch_per_rank"] == 16
    assert [r["rank"] for r in two["ranks"]] == [0, 1]
    assert {r["state_dict_sha256"] for r in two["ranks"]} == {two["state_dict_sha256"]}  # every rank ended with the same weights
    assert torchscript.state_dict_sha256(torchscript.load(str(two["out"] / "model.pt"))) == two["state_dict_sha256"]  # the ones rank 0 saved
    # bit for bit what the documented semantics give (sharding, gradient averaging, rank 0's batch
    # norm statistics, the schedule in global batches): nothing else happened across the processes
    with training.threads(1):
        assert emulate_two_ranks(160, 3, 32, seed=0) == (two["state_dict_sha256"], two["final_loss"])

    one, _ = job(tmp_path / "one", processes=1)
    assert one["world_size"] == 1 and one["train_samples"] == two["train_samples"] == 136
    assert one["history"][0].keys() == two["history"][0].keys()
    difference = abs(two["final_loss"] - one["final_loss"]) / one["final_loss"]
    assert difference <= LOSS_TOLERANCE, (one["final_loss"], two["final_loss"])
    assert two["final_loss"] < 0.6 * two["history"][0]["total"]  # and it learned


@pytest.mark.distributed
def test_a_killed_worker_is_restarted_and_the_job_resumes_from_its_last_checkpoint(two_processes, tmp_path):
    out = tmp_path / "job"
    result, output = job(out, "--checkpoint-dir", str(out / "checkpoints"), "--fail-at-epoch", "2", restarts=1)
    assert (out / "checkpoints" / "failed-once").exists()
    assert "failing on purpose" in output and "resumed from epoch 1" in output
    assert result["restart_count"] == 1 and result["resumed_from_epoch"] == 1
    assert result["epochs_trained"] == 2 < result["epochs"] == 3  # epoch 1 was not trained again
    assert result["resume_s"] is not None and result["resume_s"] > 0
    assert len(result["history"]) == 3
    # the restarted job carried on exactly: the weights of the uninterrupted job, on every rank
    assert {r["state_dict_sha256"] for r in result["ranks"]} == {two_processes["state_dict_sha256"]}
    assert result["history"] == two_processes["history"]


@pytest.mark.distributed
def test_heads_trained_alone_under_ddp_leave_everything_else_bit_identical(tmp_path):
    # the frozen parameters (requires_grad off) are not DDP's to reduce; the trained head is
    result, _ = job(tmp_path / "heads", "--samples", "80", "--epochs", "1", "--train-heads", "traffic_light")
    assert {r["state_dict_sha256"] for r in result["ranks"]} == {result["state_dict_sha256"]}
    trained = torchscript.load(str(tmp_path / "heads" / "model.pt")).state_dict()
    initial, _ = training.build_model([d.spec for d in tasks_mod.load()], None, seed=0)
    changed = {k.split(".")[1] for k, v in initial.state_dict().items() if not torch.equal(trained[k], v)}
    assert changed == {"traffic_light"}


@pytest.mark.distributed
def test_two_nodes_meeting_through_a_c10d_rendezvous_train_like_two_local_processes(two_processes, tmp_path):
    """Two torchrun agents (two "nodes" of one process each, on loopback) that find each other
    through the c10d rendezvous: the same two ranks, so the same weights as --standalone."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SERVICES), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1", "LOG_FORMAT": "json", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    out = tmp_path / "nodes"
    agent = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "it-nodes", "-m", "trainer.train_job"]
    nodes = [subprocess.Popen([*agent, *JOB, "--timeout-s", "60", "--out", str(out)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True) for _ in range(2)]
    outputs = []
    try:
        for node in nodes:
            outputs.append(node.communicate(timeout=240)[0])
    except subprocess.TimeoutExpired:
        for node in nodes:
            os.killpg(node.pid, signal.SIGKILL)
        pytest.fail("the two nodes did not finish in 240 s")
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    result = json.loads((out / "result.json").read_text())
    assert result["world_size"] == 2 and len({r["state_dict_sha256"] for r in result["ranks"]}) == 1
    assert result["state_dict_sha256"] == two_processes["state_dict_sha256"] and result["history"] == two_processes["history"]
