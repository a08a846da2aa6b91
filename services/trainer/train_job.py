"""`python -m trainer.train_job`: one training job, in one process or data-parallel under torchrun
(docs/trainer.md, "Distributed training (torchrun)" and "Run backends").

    python -m trainer.train_job --run-id <run id>            # a trainer run's job (TRAINER_BACKEND=torchrun|kubernetes)
    torchrun --standalone --nproc-per-node 2 --max-restarts 1 -m trainer.train_job --run-id <run id>
    python -m trainer.train_job --samples 400 --epochs 2 --out out/job --checkpoint-dir out/job/ckpt   # standalone

With `--run-id` the job trains what the trainer service prepared for that run: its input, checkpoints,
progress and output live in the object store under trainer/jobs/<run id>/ (`trainer.jobs`; S3_*
variables). Standalone (no `--run-id`) it trains the multitask network of tasks.yaml from fresh
weights on frames of the simulator's generator (every rank generates the same frames from the
seed), with checkpoints in `--checkpoint-dir` and results in `--out` (tests, `python -m bench trainer`).

With WORLD_SIZE > 1 (torchrun's variables, `longtail.config.TorchrunSettings`) it joins the
process group (NCCL on CUDA, gloo on the CPU) and `fitting.fit` trains data-parallel: the global
batch is the run's batch size, split across the ranks. One process trains on
`longtail.model.device.preferred()` (CUDA when present, LONGTAIL_DEVICE to choose).

After every epoch rank 0 writes a checkpoint (model, optimizer, scheduler, epoch, RNG states)
atomically, then every rank waits for it; every rank loads it at start when it exists, so a job
that torchrun restarts after a worker died (`--max-restarts`) goes on from the last finished epoch
("resumed from epoch N") and ends bit-identical to an uninterrupted job.

Rank 0 reports: per-epoch losses, the final loss, `state_dict_sha256` of every rank (gathered to
rank 0), world size, device, samples/s, whether and how it resumed (standalone: `<out>/model.pt`,
TorchScript, and `<out>/result.json` with the validation loss; `--run-id`: output.pt in the store).

`--fail-at-epoch K` (tests and `python -m bench trainer`): rank `--fail-rank` exits abruptly after
the first step of epoch K (1-based) when the marker file does not exist yet, creating it with the
time of the failure (so the restarted job does not fail again and can time its own resumption).
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import math
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
import torch
from torch import distributed as dist

from longtail import config
from longtail import log as log_mod
from longtail import tasks as tasks_mod
from longtail.model import device as device_mod
from longtail.model import fitting, torchscript
from longtail.model.network import MultiTaskNet
from longtail.storage import ObjectStore

from trainer import data as data_mod
from trainer import jobs, training

log = log_mod.get_logger(__name__)
# torch 2.11: torchrun shares its rendezvous store with the workers' process group, and the
# restarted workers can read the addresses the previous workers left in it: the gloo process group
# then hangs or is refused while connecting (measured: 5 restarts of 7 failed; pytorch/pytorch#135712
# describes the mechanism). With TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 each rendezvous round gets a
# store of its own (19 restarts of 19 went through).
SHARED_STORE_WARNING = "torchrun shares its store with the process group (TORCHELASTIC_USE_AGENT_STORE) and may restart the workers: a restart can hang or fail while connecting; run torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"
CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
MODEL = "model.pt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainer.train_job", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-id", default="", help="train this trainer run's job from the object store (trainer/jobs/<run>/; S3_* variables); the options below up to --out are then the run's")
    p.add_argument("--samples", type=int, default=400, help="generated frames (15%% of them are the validation split)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch: split across the ranks")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0, help="data, initial weights and shuffling")
    p.add_argument("--world", default="default", choices=data_mod.WORLDS, help="what the generator draws from")
    p.add_argument("--tasks-file", default="", help="task declarations (default: ./tasks.yaml, else the repository's)")
    p.add_argument("--train-heads", default="", help="comma-separated heads trained alone (the trainer's train_heads): the rest is frozen")
    p.add_argument("--out", default="", help="standalone: directory for model.pt and result.json (rank 0)")
    p.add_argument("--checkpoint-dir", default="", help="standalone: per-epoch checkpoints, resumed from at start (empty: none)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: the cores divided by the processes on this node)")
    p.add_argument("--timeout-s", type=float, default=300.0, help="process group timeout: a collective (or connecting) that waits longer fails the worker")
    p.add_argument("--fail-at-epoch", type=int, default=0, help="testing: rank --fail-rank exits after the first step of this epoch (1-based), once")
    p.add_argument("--fail-rank", type=int, default=1)
    p.add_argument("--fail-marker", default="", help="marks the failure as done (default: <checkpoint-dir>/failed-once)")
    args = p.parse_args(argv)
    for name in ("samples", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.run_id and not args.out:
        p.error("--run-id <run id> or, standalone, --out <directory> is required")
    if args.fail_at_epoch and not (args.fail_marker or args.checkpoint_dir):
        p.error("--fail-at-epoch needs --fail-marker (or --checkpoint-dir)")
    return args


def _heads(text: str) -> list[str]:
    return [h.strip() for h in text.split(",") if h.strip()]


# -- checkpoints -------------------------------------------------------------------------------------


class Checkpoints(Protocol):
    @property
    def where(self) -> str: ...

    def load(self) -> bytes | None: ...

    def save(self, data: bytes) -> None: ...


@dataclass
class DirCheckpoints:
    """In a directory (standalone jobs): written atomically, so a worker killed mid-write leaves the
    previous checkpoint intact."""

    directory: str

    @property
    def where(self) -> str:
        return str(Path(self.directory) / CHECKPOINT)

    def load(self) -> bytes | None:
        path = Path(self.where)
        return path.read_bytes() if self.directory and path.exists() else None

    def save(self, data: bytes) -> None:
        path = Path(self.where)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{CHECKPOINT}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@dataclass
class StoreCheckpoints:
    """In the object store (a run's job, whose ranks may be on other machines): an S3 PUT replaces
    the object whole or not at all."""

    store: ObjectStore
    key: str

    @property
    def where(self) -> str:
        return f"{self.store.bucket}/{self.key}"

    def load(self) -> bytes | None:
        return self.store.get(self.key) if self.store.exists(self.key) else None

    def save(self, data: bytes) -> None:
        self.store.put_at(self.key, data)


def load_checkpoint(checkpoints: Checkpoints | None, identity: dict[str, Any]) -> dict[str, Any] | None:
    if checkpoints is None:
        return None
    data = checkpoints.load()
    if data is None:
        return None
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if state.get("job") != identity:
        raise SystemExit(f"{checkpoints.where} is the checkpoint of another job ({state.get('job')}); remove it or use another place")
    state.pop("job")
    return state


def save_checkpoint(checkpoints: Checkpoints, state: dict[str, Any]) -> None:
    checkpoints.save(jobs.to_bytes(state))


# -- what one job trains -----------------------------------------------------------------------------


@dataclass
class Job:
    """The network, its data and hyperparameters, where checkpoints go and how rank 0 reports."""

    model: MultiTaskNet
    images: Any  # uint8 [N, H, W, 3], numpy or torch
    targets: dict[str, dict[str, torch.Tensor]]
    epochs: int
    batch_size: int
    lr: float
    seed: int
    train_heads: list[str]
    identity: dict[str, Any]
    checkpoints: Checkpoints | None
    finish: Callable[[MultiTaskNet, list[dict[str, float]], dict[str, Any]], None]  # rank 0, at the end
    progress: Callable[[dict[str, Any]], None] = lambda _: None  # rank 0, after every epoch
    fail_marker: Path | None = None  # --fail-at-epoch (testing): the failure happened once
    fail_at_epoch: int = 0
    fail_rank: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # reported as is


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def standalone_job(args: argparse.Namespace) -> Job:
    tasks = [d.spec for d in tasks_mod.load(args.tasks_file or None)]
    splits = data_mod.generated(tasks, args.samples, args.seed, args.world)
    model, _ = training.build_model(tasks, None, args.seed)
    heads = _heads(args.train_heads)
    identity = {"samples": args.samples, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "world": args.world, "train_heads": heads, "tasks": [t.to_dict() for t in tasks]}
    out = Path(args.out)

    def finish(model: MultiTaskNet, history: list[dict[str, float]], report: dict[str, Any]) -> None:
        out.mkdir(parents=True, exist_ok=True)
        report["model_sha256"] = torchscript.save(model, str(out / MODEL))
        report["val_loss"] = training.evaluate(model, splits["val"], "val").get("val/loss")
        _write_json(out / RESULT, report)

    return Job(
        model,
        splits["train"].images,
        fitting.encode_targets(model.tasks, splits["train"].annotations),
        args.epochs,
        args.batch_size,
        args.lr,
        args.seed,
        heads,
        identity,
        DirCheckpoints(args.checkpoint_dir) if args.checkpoint_dir else None,
        finish,
        fail_marker=Path(args.fail_marker or Path(args.checkpoint_dir or ".") / "failed-once"),
        extra={"samples": args.samples},
    )


def run_job(args: argparse.Namespace, store: ObjectStore) -> Job:
    given = jobs.read_input(store, args.run_id)
    hyper = given.hyper

    def finish(model: MultiTaskNet, history: list[dict[str, float]], report: dict[str, Any]) -> None:
        jobs.write_output(store, args.run_id, model.state_dict(), history, report)

    return Job(
        given.build(),
        given.images,
        given.targets,
        int(hyper["epochs"]),
        int(hyper["batch_size"]),
        float(hyper["lr"]),
        int(hyper["seed"]),
        list(hyper.get("train_heads", [])),
        given.identity(),
        StoreCheckpoints(store, jobs.key(args.run_id, jobs.CHECKPOINT)),
        finish,
        progress=lambda p: jobs.write_progress(store, args.run_id, p),
        fail_marker=Path(args.fail_marker) if args.fail_marker else None,
        extra={"run_id": args.run_id},
    )


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    args = parse_args(argv)
    env = config.load(config.TorchrunSettings)
    log_mod.configure("trainer-job")
    structlog.contextvars.bind_contextvars(rank=env.rank, run_id=args.run_id or None)
    threads = args.threads or max(1, (os.cpu_count() or 1) // env.local_world_size)
    torch.set_num_threads(threads)
    importlib.import_module("torch._dynamo")  # Adam's first step imports it (~1.7 s): part of start-up, not of samples/s

    world_size, rank, backend = 1, 0, ""
    device = device_mod.preferred()
    if env.world_size > 1:
        if torch.cuda.is_available() and device.type == "cuda":
            backend, device = "nccl", torch.device("cuda", env.local_rank)
            torch.cuda.set_device(device)
        else:
            backend, device = "gloo", torch.device("cpu")
        if env.max_restarts and env.use_agent_store and env.rank == 0:
            log.warning(SHARED_STORE_WARNING)
        dist.init_process_group(backend, timeout=timedelta(seconds=args.timeout_s))  # env:// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from torchrun)
        world_size, rank = dist.get_world_size(), dist.get_rank()
    log.info("training job", world_size=world_size, backend=backend or "none", device=device_mod.describe(device), threads=threads, restart=env.restart_count, host=socket.gethostname())
    try:
        job = run_job(args, ObjectStore(config.load(config.S3Settings), service="trainer-job")) if args.run_id else standalone_job(args)
        job.fail_at_epoch, job.fail_rank = args.fail_at_epoch, args.fail_rank
        return _train(job, env, world_size, rank, backend, device, threads, started)
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def _train(job: Job, env: config.TorchrunSettings, world_size: int, rank: int, backend: str, device: torch.device, threads: int, started: float) -> int:
    state = load_checkpoint(job.checkpoints, job.identity)
    resumed_from = int(state["epoch"]) if state is not None else None
    marker = job.fail_marker
    resume_s = None
    if resumed_from is not None:
        failed_at = float(marker.read_text() or 0) if marker is not None and marker.exists() and env.restart_count else 0.0  # --fail-at-epoch's, in this torchrun
        resume_s = time.time() - failed_at if failed_at else None  # the failure -> training goes on (detection, restart, start-up, data, checkpoint)
        log.info(f"resumed from epoch {resumed_from}", epoch=resumed_from, of=job.epochs, resume_s=resume_s, checkpoint=job.checkpoints.where if job.checkpoints is not None else None)

    n = int(job.images.shape[0])
    per_epoch = math.ceil(n / job.batch_size)

    def on_step(done: int, total: int) -> None:
        epoch = (done - 1) // per_epoch + 1
        if job.fail_at_epoch == epoch and rank == job.fail_rank and done == (epoch - 1) * per_epoch + 1 and marker is not None and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(repr(time.time()))
            log.warning("failing on purpose (--fail-at-epoch)", epoch=epoch)
            os._exit(1)  # as a killed worker: no clean-up, no goodbye to the process group

    def on_checkpoint(ckpt: dict[str, Any]) -> None:
        if job.checkpoints is None:
            return
        if rank == 0:
            save_checkpoint(job.checkpoints, {**ckpt, "job": job.identity})
        if world_size > 1:
            dist.barrier()  # nobody starts the next epoch before the checkpoint of this one exists

    epoch_s: list[float] = []
    mark = [time.perf_counter()]

    def on_epoch(epoch: int, means: dict[str, float]) -> None:
        now = time.perf_counter()
        epoch_s.append(now - mark[0])
        mark[0] = now
        loss = means.get("total", math.nan)
        log.info("epoch done", epoch=epoch + 1, of=job.epochs, loss=round(loss, 5), seconds=round(epoch_s[-1], 3))
        if rank == 0:
            job.progress({"epoch": epoch + 1, "epochs": job.epochs, "loss": loss, "restart_count": env.restart_count, "world_size": world_size, "at": time.time()})

    t0 = mark[0] = time.perf_counter()
    history = training.train_encoded(
        job.model, job.images, job.targets, epochs=job.epochs, batch_size=job.batch_size, lr=job.lr, seed=job.seed, on_step=on_step, on_epoch=on_epoch, only_heads=job.train_heads, resume=state, on_checkpoint=on_checkpoint, device=device
    )
    train_s = time.perf_counter() - t0
    epochs_trained = job.epochs - (resumed_from or 0)
    digest = torchscript.state_dict_sha256(job.model)
    gathered: list[Any] | None = [None] * world_size if rank == 0 else None
    mine = {"rank": rank, "state_dict_sha256": digest, "device": str(device), "host": socket.gethostname()}
    if world_size > 1:
        dist.gather_object(mine, gathered, dst=0)
    else:
        gathered = [mine]
    if rank != 0:
        return 0
    assert gathered is not None
    report = {
        **job.extra,
        "world_size": world_size,
        "backend": backend or "none",
        "device": str(device),
        "threads_per_process": threads,
        "train_samples": n,
        "epochs": job.epochs,
        "batch_size": job.batch_size,
        "batch_per_rank": math.ceil(job.batch_size / world_size),
        "seed": job.seed,
        "lr": job.lr,
        "train_heads": job.train_heads,
        "history": history,
        "final_loss": history[-1].get("total") if history else None,
        "state_dict_sha256": digest,
        "ranks": gathered,
        "epochs_trained": epochs_trained,
        "resumed_from_epoch": resumed_from,
        "restart_count": env.restart_count,
        "resume_s": resume_s,
        "train_s": train_s,
        "epoch_s": epoch_s,  # the epochs this process trained (with a checkpoint each)
        "samples_per_s": n * epochs_trained / train_s if epochs_trained and train_s > 0 else None,
        "wall_s": time.time() - started,
    }
    job.finish(job.model, history, report)
    log.info("training job done", final_loss=report["final_loss"], samples_per_s=report["samples_per_s"], state_dict_sha256=digest[:16], ranks_identical=len({g["state_dict_sha256"] for g in gathered}) == 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
