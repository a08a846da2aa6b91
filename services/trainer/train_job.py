"""`python -m trainer.train_job`: one self-contained training job, in one process or data-parallel
under torchrun (issue #21, first slice; docs/trainer.md, "Distributed training (torchrun)").

    python -m trainer.train_job --samples 400 --epochs 2 --out out/job --checkpoint-dir out/job/ckpt
    torchrun --standalone --nproc-per-node 2 --max-restarts 1 -m trainer.train_job ... (same arguments)

It trains the multitask network of tasks.yaml from fresh weights on frames of the simulator's
generator (what a trainer run without labelled data trains on, `trainer.data.generated`; every
rank generates the same frames from the seed). With WORLD_SIZE > 1 (torchrun's variables,
`longtail.config.TorchrunSettings`) it joins the process group (NCCL on CUDA, gloo on the CPU) and
`fitting.fit` trains data-parallel: the global batch is `--batch-size`, split across the ranks.

After every epoch rank 0 writes a checkpoint (model, optimizer, scheduler, epoch, RNG states) to
`--checkpoint-dir` atomically, then every rank waits for it; every rank loads it at start when it
exists, so a job that torchrun restarts after a worker died (`--max-restarts`) goes on from the
last finished epoch ("resumed from epoch N") and ends bit-identical to an uninterrupted job.

Rank 0 writes `<out>/model.pt` (TorchScript, `longtail.model.torchscript.save`) and
`<out>/result.json`: per-epoch losses, the final loss, the validation loss, `state_dict_sha256`
of every rank (gathered to rank 0), world size, device, samples/s, whether and how it resumed.

`--fail-at-epoch K` (tests and `python -m bench ddp`): rank `--fail-rank` exits abruptly after
the first step of epoch K (1-based) when the marker file does not exist yet, creating it with the
time of the failure (so the restarted job does not fail again and can time its own resumption).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
import torch
from torch import distributed as dist

from longtail import config
from longtail import log as log_mod
from longtail import tasks as tasks_mod
from longtail.model import torchscript

from trainer import data as data_mod
from trainer import training

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
    p.add_argument("--samples", type=int, default=400, help="generated frames (15%% of them are the validation split)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="the global batch: split across the ranks")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0, help="data, initial weights and shuffling")
    p.add_argument("--world", default="default", choices=data_mod.WORLDS, help="what the generator draws from")
    p.add_argument("--tasks-file", default="", help="task declarations (default: ./tasks.yaml, else the repository's)")
    p.add_argument("--train-heads", default="", help="comma-separated heads trained alone (the trainer's train_heads): the rest is frozen")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0: the cores divided by the processes on this node)")
    p.add_argument("--out", required=True, help="directory for model.pt and result.json (rank 0)")
    p.add_argument("--checkpoint-dir", default="", help="per-epoch checkpoints, resumed from at start (empty: none)")
    p.add_argument("--timeout-s", type=float, default=300.0, help="process group timeout: a collective (or connecting) that waits longer fails the worker")
    p.add_argument("--fail-at-epoch", type=int, default=0, help="testing: rank --fail-rank exits after the first step of this epoch (1-based), once")
    p.add_argument("--fail-rank", type=int, default=1)
    p.add_argument("--fail-marker", default="", help="marks the failure as done (default: <checkpoint-dir>/failed-once)")
    args = p.parse_args(argv)
    for name in ("samples", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.fail_at_epoch and not (args.fail_marker or args.checkpoint_dir):
        p.error("--fail-at-epoch needs --fail-marker or --checkpoint-dir")
    return args


def _job(args: argparse.Namespace, tasks: list[tasks_mod.TaskSpec]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (the world size may differ: the global batch and
    the schedule do not depend on it)."""
    return {"samples": args.samples, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "world": args.world, "train_heads": _heads(args), "tasks": [t.to_dict() for t in tasks]}


def _heads(args: argparse.Namespace) -> list[str]:
    return [h.strip() for h in args.train_heads.split(",") if h.strip()]


def load_checkpoint(directory: str, job: dict[str, Any]) -> dict[str, Any] | None:
    path = Path(directory) / CHECKPOINT if directory else None
    if path is None or not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("job") != job:
        raise SystemExit(f"{path} is the checkpoint of another job ({state.get('job')}); remove it or use another --checkpoint-dir")
    return state


def save_checkpoint(directory: str, state: dict[str, Any]) -> None:
    """Write atomically: a worker killed mid-write leaves the previous checkpoint intact."""
    path = Path(directory) / CHECKPOINT
    tmp = path.with_name(f".{CHECKPOINT}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(state, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    started = time.time()
    args = parse_args(argv)
    env = config.load(config.TorchrunSettings)
    log_mod.configure("trainer-job")
    structlog.contextvars.bind_contextvars(rank=env.rank)
    threads = args.threads or max(1, (os.cpu_count() or 1) // env.local_world_size)
    torch.set_num_threads(threads)
    importlib.import_module("torch._dynamo")  # Adam's first step imports it (~1.7 s): part of start-up, not of samples/s

    world_size, rank, backend = 1, 0, ""
    device = torch.device("cpu")
    if env.world_size > 1:
        if torch.cuda.is_available():
            backend, device = "nccl", torch.device("cuda", env.local_rank)
            torch.cuda.set_device(device)
        else:
            backend = "gloo"
        if env.max_restarts and env.use_agent_store and env.rank == 0:
            log.warning(SHARED_STORE_WARNING)
        dist.init_process_group(backend, timeout=timedelta(seconds=args.timeout_s))  # env:// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE from torchrun)
        world_size, rank = dist.get_world_size(), dist.get_rank()
    log.info("training job", world_size=world_size, backend=backend or "none", device=str(device), threads=threads, restart=env.restart_count, host=socket.gethostname())
    try:
        return _run(args, env, world_size, rank, backend, device, threads, started)
    finally:
        if world_size > 1:
            dist.destroy_process_group()


def _run(args: argparse.Namespace, env: config.TorchrunSettings, world_size: int, rank: int, backend: str, device: torch.device, threads: int, started: float) -> int:
    tasks = [d.spec for d in tasks_mod.load(args.tasks_file or None)]
    splits = data_mod.generated(tasks, args.samples, args.seed, args.world)
    train = splits["train"]
    model, _ = training.build_model(tasks, None, args.seed)
    job = _job(args, tasks)
    state = load_checkpoint(args.checkpoint_dir, job)
    if state is not None:
        state.pop("job")
    resumed_from = int(state["epoch"]) if state is not None else None
    marker = Path(args.fail_marker or Path(args.checkpoint_dir or ".") / "failed-once")
    resume_s = None
    if resumed_from is not None:
        failed_at = float(marker.read_text() or 0) if marker.exists() and env.restart_count else 0.0  # --fail-at-epoch's, in this torchrun
        resume_s = time.time() - failed_at if failed_at else None  # the failure -> training goes on (detection, restart, start-up, data, checkpoint)
        log.info(f"resumed from epoch {resumed_from}", epoch=resumed_from, of=args.epochs, resume_s=resume_s)
    if args.checkpoint_dir and rank == 0:
        Path(args.checkpoint_dir).mkdir(parents=True, exist_ok=True)

    per_epoch = math.ceil(len(train) / args.batch_size)

    def on_step(done: int, total: int) -> None:
        epoch = (done - 1) // per_epoch + 1
        if args.fail_at_epoch == epoch and rank == args.fail_rank and done == (epoch - 1) * per_epoch + 1 and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(repr(time.time()))
            log.warning("failing on purpose (--fail-at-epoch)", epoch=epoch)
            os._exit(1)  # as a killed worker: no clean-up, no goodbye to the process group

    def on_checkpoint(ckpt: dict[str, Any]) -> None:
        if not args.checkpoint_dir:
            return
        if rank == 0:
            save_checkpoint(args.checkpoint_dir, {**ckpt, "job": job})
        if world_size > 1:
            dist.barrier()  # nobody starts the next epoch before the checkpoint of this one exists

    epoch_s: list[float] = []
    mark = [time.perf_counter()]

    def on_epoch(epoch: int, means: dict[str, float]) -> None:
        now = time.perf_counter()
        epoch_s.append(now - mark[0])
        mark[0] = now
        log.info("epoch done", epoch=epoch + 1, of=args.epochs, loss=round(means.get("total", math.nan), 5), seconds=round(epoch_s[-1], 3))

    t0 = mark[0] = time.perf_counter()
    history = training.train(model, train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, on_step=on_step, on_epoch=on_epoch, only_heads=_heads(args), resume=state, on_checkpoint=on_checkpoint)
    train_s = time.perf_counter() - t0
    epochs_trained = args.epochs - (resumed_from or 0)
    digest = torchscript.state_dict_sha256(model)
    gathered: list[Any] | None = [None] * world_size if rank == 0 else None
    mine = {"rank": rank, "state_dict_sha256": digest, "device": str(device), "host": socket.gethostname()}
    if world_size > 1:
        dist.gather_object(mine, gathered, dst=0)
    else:
        gathered = [mine]
    if rank != 0:
        return 0
    assert gathered is not None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_sha256 = torchscript.save(model, str(out / MODEL))
    val = training.evaluate(model, splits["val"], "val")
    result = {
        "world_size": world_size,
        "backend": backend or "none",
        "device": str(device),
        "threads_per_process": threads,
        "samples": args.samples,
        "train_samples": len(train),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "batch_per_rank": math.ceil(args.batch_size / world_size),
        "seed": args.seed,
        "lr": args.lr,
        "train_heads": _heads(args),
        "history": history,
        "final_loss": history[-1].get("total") if history else None,
        "val_loss": val.get("val/loss"),
        "state_dict_sha256": digest,
        "ranks": gathered,
        "model_sha256": model_sha256,
        "epochs_trained": epochs_trained,
        "resumed_from_epoch": resumed_from,
        "restart_count": env.restart_count,
        "resume_s": resume_s,
        "train_s": train_s,
        "epoch_s": epoch_s,  # the epochs this process trained (with a checkpoint each)
        "samples_per_s": len(train) * epochs_trained / train_s if epochs_trained and train_s > 0 else None,
        "wall_s": time.time() - started,
    }
    _write_json(out / RESULT, result)
    log.info("training job done", final_loss=result["final_loss"], samples_per_s=result["samples_per_s"], state_dict_sha256=digest[:16], ranks_identical=len({g["state_dict_sha256"] for g in gathered}) == 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
