"""Training throughput of the multitask network on CPU (samples/s), in one run, two tables:

1. batch size and threads, in one process:

- the same `longtail.model.fitting.fit` loop (Adam, the trainer's loss) on the same 1024 simulator
  frames, at batch sizes 8 (close to per-sample updates: the baseline), 64 (the trainer's
  default) and 256, with the trainer's thread count (TRAINER_THREADS, default 2);
- the default batch size with 1 thread, to show what the intra-op threads buy.

Why this baseline and not torch.compile: the network is small (a 4-block CNN on 64x64 frames), so
per-step Python and dispatch overhead, not FLOPs, dominates at small batches — batching is the
lever the trainer actually pulls; inductor needs a C++ toolchain at run time that the service
image does not ship. Samples/s count training samples (forward + backward + step), excluding
data generation. No thresholds are asserted; the ratios are the result.

2. one process vs two data-parallel processes under torchrun, and the time to resume after a
   killed worker (`bench.trainer_ddp`).
"""

from __future__ import annotations

import os
import time

import torch

from longtail import tasks as tasks_mod
from longtail.model import fitting
from longtail.model.network import MultiTaskNet, num_parameters

from bench import trainer_ddp

NEEDS_INFRA = False  # no Kafka, no S3: `python -m bench trainer` starts nothing
SAMPLES = 1024
EPOCHS = 2


def _measure(images, targets, batch_size: int, threads: int) -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        net = MultiTaskNet(tasks_mod.DEFAULT_TASKS)
        fitting.fit(net, images[:128], {t: {k: v[:128] for k, v in tg.items()} for t, tg in targets.items()}, epochs=1, batch_size=batch_size)  # warm-up
        started = time.perf_counter()
        fitting.fit(net, images, targets, epochs=EPOCHS, batch_size=batch_size, seed=0)
        return SAMPLES * EPOCHS / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)


def run(args, console) -> dict:
    from trainer import data as data_mod

    threads = int(os.environ.get("TRAINER_THREADS", "2"))
    split = data_mod.generated(tasks_mod.DEFAULT_TASKS, SAMPLES + 1, seed=0, world="default", val_fraction=0.0)["train"]
    images = split.images[:SAMPLES]
    targets = fitting.encode_targets(tasks_mod.DEFAULT_TASKS, split.annotations[:SAMPLES])
    rows, results = [], {}
    for batch, th in ((8, threads), (64, threads), (256, threads), (64, 1)):
        console.print(f"[magenta]trainer[/] batch {batch}, {th} thread(s) ...")
        sps = _measure(images, targets, batch, th)
        results[(batch, th)] = sps
    base = results[(8, threads)]
    for (batch, th), sps in results.items():
        rows.append([batch, th, f"{sps:,.0f}", f"{sps / base:.2f}x"])
    default = results[(64, threads)]
    ddp = trainer_ddp.run(args, console)
    return {
        "title": f"multitask training throughput on CPU ({SAMPLES} frames x {EPOCHS} epochs, {num_parameters(MultiTaskNet(tasks_mod.DEFAULT_TASKS)):,} parameters)",
        "columns": ["batch", "threads", "samples/s", "vs batch 8"],
        "rows": rows,
        "more_tables": [{k: ddp[k] for k in ("title", "columns", "rows")}],
        "verdict": [f"trainer default (batch 64, {threads} threads): {default:,.0f} samples/s = {default / base:.1f}x the small-batch baseline; {default / results[(64, 1)]:.2f}x one thread", *ddp["verdict"]],
        "samples_per_s": {f"b{b}_t{t}": v for (b, t), v in results.items()},
        "data_parallel": {k: v for k, v in ddp.items() if k not in ("title", "columns", "rows", "verdict")},
    }
