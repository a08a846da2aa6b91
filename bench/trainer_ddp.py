"""Data-parallel training on the CPU, the second table of `python -m bench trainer`:
`python -m trainer.train_job` on the same generated frames, seed and global batch, in one run:

- 1 process x 1 thread: the baseline;
- 1 process x 2 threads: what a trainer run does today (TRAINER_THREADS=2, intra-op threads);
- 2 processes x 1 thread: `torchrun --standalone --nproc-per-node 2` (DDP, gloo), each rank
  half of every global batch;
- the same two processes with rank 1 dying after the first step of the last epoch
  (`--fail-at-epoch`, `torchrun --max-restarts 1`): the time from the failure to training going on
  from the last checkpoint (torchrun noticing, new workers starting, the process group, the data,
  the checkpoint), and the wall time lost against the uninterrupted job.

Columns: samples/s, the ratio to 1x1, the last epoch's mean training loss, the wall time from
launch to exit (start-up and data generation included), whether every rank ended with the same
weights. Samples/s count training samples (forward, backward, all-reduce, step, checkpoint) over the epochs
a process trained, not start-up or data generation. On a machine with two cores the two processes
share the cores that one process with two threads already uses, so expect no speed-up: what DDP
buys here is the code path (identical weights on every rank, checkpoints, restarts), the speed-up
needs more cores or machines. No thresholds are asserted; the ratios are the result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[1] / "services"
SAMPLES = 1200  # 1020 training frames (15 % validation)
EPOCHS = 2
BATCH = 64


def _job(out: Path, processes: int, threads: int, *extra: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SERVICES), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": str(threads),
        "LOG_FORMAT": "json",
        "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1",  # see trainer.train_job.SHARED_STORE_WARNING
    }
    command = [sys.executable, "-m", "trainer.train_job"]
    if processes > 1:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes), "--max-restarts", "1", "-m", "trainer.train_job"]
    args = ["--samples", str(SAMPLES), "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--seed", "0", "--threads", str(threads), "--out", str(out), "--checkpoint-dir", str(out / "checkpoints"), *extra]
    started = time.perf_counter()
    done = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return {**json.loads((out / "result.json").read_text()), "launch_wall_s": time.perf_counter() - started}


def run(args, console) -> dict:
    load_before = os.getloadavg()[0]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as tmp:
        for name, processes, threads, extra in (
            ("1x1", 1, 1, ()),
            ("1x2", 1, 2, ()),
            ("2x1 DDP", 2, 1, ()),
            ("2x1 DDP, rank 1 killed", 2, 1, ("--fail-at-epoch", str(EPOCHS))),
        ):
            console.print(f"[magenta]trainer[/] data-parallel {name} ...")
            results[name] = _job(Path(tmp) / name.replace(" ", "_").replace(",", ""), processes, threads, *extra)
    base = results["1x1"]["samples_per_s"]
    rows = []
    for name, r in results.items():
        identical = len({x["state_dict_sha256"] for x in r["ranks"]}) == 1
        rows.append([name, f"{r['samples_per_s']:,.0f}", f"{r['samples_per_s'] / base:.2f}x", f"{r['final_loss']:.4f}", f"{r['launch_wall_s']:.1f}", "yes" if identical else "NO"])
    one, two_threads, two, killed = results["1x1"], results["1x2"], results["2x1 DDP"], results["2x1 DDP, rank 1 killed"]
    ratio = two["samples_per_s"] / two_threads["samples_per_s"]
    lost = killed["launch_wall_s"] - two["launch_wall_s"]
    same = killed["state_dict_sha256"] == two["state_dict_sha256"]
    return {
        "title": f"data-parallel training, CPU, {os.cpu_count()} cores ({SAMPLES} frames, {EPOCHS} epochs, batch {BATCH})",
        "columns": ["processes x threads", "samples/s", "vs 1x1", "final loss", "wall s", "ranks equal"],
        "rows": rows,
        "verdict": [
            f"2 processes x 1 thread: {two['samples_per_s']:,.0f} samples/s = {two['samples_per_s'] / base:.2f}x one process with one thread, {ratio:.2f}x one process with two threads",
            "  (on two cores the processes share the cores the threads already used: expect no speed-up here)",
            f"final loss 2 processes {two['final_loss']:.4f} vs 1 process {one['final_loss']:.4f} ({(two['final_loss'] - one['final_loss']) / one['final_loss']:+.1%}; per-rank batch norm over {two['batch_per_rank']} frames)",
            f"killed worker: resumed from epoch {killed['resumed_from_epoch']} of {EPOCHS}, {killed['resume_s']:.1f} s from the failure to training again, {lost:.1f} s of wall time lost",
            f"  weights after the restart {'identical to' if same else 'DIFFERENT from'} the uninterrupted job's",
            f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after (other work on the machine slows every row)",
        ],
        "samples_per_s": {name: r["samples_per_s"] for name, r in results.items()},
        "ratio_2proc_vs_1proc_2threads": ratio,
        "resume_s": killed["resume_s"],
        "lost_s": lost,
    }
