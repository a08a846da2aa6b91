"""Inference benchmarks against the real Triton (PyTriton's tritonserver on CPU), real S3 and Kafka.

1. Throughput and latency at the same offered load: C concurrent callers (closed loop), each
   asking for one 64x64 image at a time, served
   - by the Triton path: tritonclient gRPC -> Triton's dynamic batcher -> the version's Python
     backend (TorchScript), which merges concurrent requests into one forward pass;
   - by eager torch in this process, one request at a time (the baseline: a model behind a lock).
   Latency includes the wait for a turn, as a caller sees it. A third row shows client-side
   batching (the snapshot path): batches of 32 images per call.
   Target: Triton >= 2x the eager throughput at equal or better p95.
2. Model swap under constant load: the inference service (a real process) answers Infer calls
   from C callers while a new version is published; failed requests (target 0) and p99 during
   the swap vs before it.
No thresholds are asserted; the table and the ratios are the result.
"""

from __future__ import annotations

import io
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import torch
from PIL import Image
from rich.progress import Progress

from longtail import model_repo, topics
from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2
from longtail.config import S3Settings
from longtail.inference.v1 import inference_pb2, inference_pb2_grpc
from longtail.kafka import Producer
from longtail.model.network import MultiTaskNet
from longtail.registry import INFERENCE
from longtail.storage import ObjectStore

from longtail_dev.supervisor import ServiceProcess

CALLERS = 16
REQUESTS = 3000
CLIENT_BATCH = 32


def _percentiles(latencies: list[float]) -> tuple[float, float, float]:
    if not latencies:
        return float("nan"), float("nan"), float("nan")
    a = np.asarray(latencies) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def _closed_loop(call, callers: int, total: int) -> tuple[float, list[float], int]:
    """`callers` threads issue `call()` back to back until `total` calls are done; returns
    (wall seconds, per-call latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    remaining = [total]

    def worker():
        nonlocal failures
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            t0 = time.perf_counter()
            try:
                call()
            except Exception:
                with lock:
                    failures += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        for f in [pool.submit(worker) for _ in range(callers)]:
            f.result()
    return time.perf_counter() - t0, latencies, failures


def _model(seed: int) -> MultiTaskNet:
    torch.manual_seed(seed)
    return MultiTaskNet(tasks_mod.DEFAULT_TASKS).eval()


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _throughput(store: ObjectStore, triton_addr: str, name: str, requests: int, callers: int, progress: Progress) -> list[list]:
    from inference.serving import ModelManager, TritonGrpc

    net = _model(0)
    model_repo.publish(store, net, name, 1)
    triton = TritonGrpc(triton_addr)
    manager = ModelManager(name, store, triton)
    if manager.apply(1) != "served":
        raise RuntimeError(f"Triton did not load {name}: {manager.refused}")
    image = np.random.default_rng(0).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    x = torch.from_numpy(image)
    lock = threading.Lock()

    def eager():
        with lock, torch.no_grad():  # one request at a time
            net(x)

    def triton_one():
        triton.infer(name, 1, image)

    batch = np.repeat(image, CLIENT_BATCH, axis=0)

    def triton_batch():
        triton.infer(name, 1, batch)

    task = progress.add_task("inference: eager vs Triton", total=None)
    for fn in (eager, triton_one):  # warm-up: allocator, gRPC channel, the stub's first batches
        _closed_loop(fn, callers, 200)
    e_wall, e_lat, e_fail = _closed_loop(eager, callers, requests)
    t_wall, t_lat, t_fail = _closed_loop(triton_one, callers, requests)
    b_calls = max(20, requests // CLIENT_BATCH)
    b_wall, b_lat, b_fail = _closed_loop(triton_batch, 2, b_calls)
    progress.remove_task(task)
    triton.client.unload_model(name)
    triton.close()
    rows = []
    for label, n, wall, lat, fail, per_call in [
        (f"eager torch, 1 request at a time ({callers} callers) — baseline", requests, e_wall, e_lat, e_fail, 1),
        (f"Triton gRPC, 1 image/request, dynamic batching ({callers} callers)", requests, t_wall, t_lat, t_fail, 1),
        (f"Triton gRPC, client-side batches of {CLIENT_BATCH} (2 callers)", b_calls, b_wall, b_lat, b_fail, CLIENT_BATCH),
    ]:
        p50, p95, p99 = _percentiles(lat)
        rows.append([label, f"{n * per_call:,}", f"{n * per_call / wall:,.0f}", f"{p50:.1f}", f"{p95:.1f}", f"{p99:.1f}", str(fail)])
    return rows


def _swap(store: ObjectStore, bootstrap: str, name: str, callers: int, progress: Progress) -> dict:
    producer = Producer(bootstrap, "bench")

    def publish(version: int) -> None:
        pv = model_repo.publish(store, _model(version), name, version)
        producer.produce(topics.MODELS_PUBLISHED, name, model_repo.published_event(pv, common_pb2.MODEL_ROLE_PRODUCTION, store.bucket))
        producer.flush()

    publish(1)
    service = ServiceProcess(INFERENCE.package, INFERENCE.grpc, {"INFERENCE_MODEL_NAME": name, "INFERENCE_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:6]}"}).start(timeout=240)
    task = progress.add_task("inference: model swap under load", total=None)
    samples: list[tuple[float, float, bool, int]] = []  # (start, latency, ok, version)
    lock = threading.Lock()
    stop = threading.Event()
    payload = _png(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))

    def caller():
        stub = inference_pb2_grpc.InferenceServiceStub(service.channel())
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                version = stub.Infer(inference_pb2.InferRequest(image=payload), timeout=30).model.version
                ok = True
            except grpc.RpcError:
                version, ok = 0, False
            with lock:
                samples.append((t0, time.perf_counter() - t0, ok, version))

    def serving() -> int:
        stub = inference_pb2_grpc.InferenceServiceStub(service.channel())
        return stub.GetServingModel(inference_pb2.GetServingModelRequest(), timeout=10).model.version

    threads = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
    try:
        for t in threads:
            t.start()
        time.sleep(5)  # steady state before the swap
        swap_start = time.perf_counter()
        publish(2)
        deadline = time.monotonic() + 300
        while serving() != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        swap_end = time.perf_counter()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        stop.set()
        progress.remove_task(task)
        service.stop()
        producer.close()
    before = [s for s in samples if s[0] < swap_start]
    during = [s for s in samples if swap_start <= s[0] <= swap_end]
    return {
        "swap_seconds": swap_end - swap_start,
        "requests": len(samples),
        "failed": sum(1 for s in samples if not s[2]),
        "during": len(during),
        "failed_during": sum(1 for s in during if not s[2]),
        "p99_before_ms": _percentiles([s[1] for s in before if s[2]])[2],
        "p99_during_ms": _percentiles([s[1] for s in during if s[2]])[2],
        "versions": sorted({s[3] for s in samples if s[2]}),
    }


def run(args, console) -> dict:
    from longtail_dev.infra import Launcher

    os.environ.update(Launcher(say=lambda m: console.print(f"[cyan]infra[/] {m}")).up(["triton"]))
    store = ObjectStore(S3Settings(endpoint=os.environ["S3_ENDPOINT"], access_key=os.environ["S3_ACCESS_KEY"], secret_key=os.environ["S3_SECRET_KEY"], bucket=os.environ.get("S3_BUCKET", "longtail")))
    requests = getattr(args, "inference_requests", REQUESTS)
    with Progress(console=console, transient=True) as progress:
        rows = _throughput(store, os.environ["TRITON_GRPC_ADDR"], f"bench_{uuid.uuid4().hex[:8]}", requests, CALLERS, progress)
        swap = _swap(store, os.environ["KAFKA_BOOTSTRAP_SERVERS"], f"bench_swap_{uuid.uuid4().hex[:8]}", 8, progress)
    eager_tp, triton_tp = float(rows[0][2].replace(",", "")), float(rows[1][2].replace(",", ""))
    eager_p95, triton_p95 = float(rows[0][4]), float(rows[1][4])
    rows.append([f"swap v1 -> v2 under load (8 callers, {swap['swap_seconds']:.1f} s swap)", f"{swap['requests']:,}", "", "", "", f"{swap['p99_during_ms']:.1f}", str(swap["failed"])])
    verdict = [
        f"Triton vs eager at {CALLERS} concurrent callers: throughput {triton_tp / eager_tp:.2f}x (target >= 2x), p95 {triton_p95:.1f} ms vs {eager_p95:.1f} ms ({eager_p95 / triton_p95:.2f}x better; target: equal or better)",
        f"model swap: {swap['failed']} failed of {swap['requests']:,} requests ({swap['failed_during']} of {swap['during']:,} during the "
        f"{swap['swap_seconds']:.1f} s swap; target 0); p99 {swap['p99_before_ms']:.1f} ms before, {swap['p99_during_ms']:.1f} ms during; "
        f"versions answered {swap['versions']}",
    ]
    return {
        "title": "inference: Triton path vs eager torch, and a model swap under load",
        "columns": ["path", "images", "images/s", "p50 ms", "p95 ms", "p99 ms", "failed"],
        "rows": rows,
        "verdict": verdict,
        "swap": swap,
    }
