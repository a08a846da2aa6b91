"""label-store benchmark: 50 concurrent labellers against a real label-store process, SQLite
(the embedded default) vs PostgreSQL (production), in the same run.

Each backend gets a fresh database and the same N registered samples; 50 labellers (one gRPC
client each, all in one asyncio loop) repeat GetNextTask -> SubmitLabel until the queue is empty.
Reported: label submissions per second, checkout (GetNextTask) p50/p99 latency, submit p99, and
the PostgreSQL/SQLite ratio. The client shares the machine with the server and the databases.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
import uuid

import sqlalchemy as sa

from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.registry import LABEL_STORE

from longtail_dev.supervisor import ServiceProcess

SECRET = "bench-label-store-operator-secret-0123456789"
LABELLERS = 50


def _annotation() -> C.TaskOutput:
    out = C.TaskOutput(detection=C.DetectionOutput())
    d = out.detection.detections.add(cls="stop_sign", confidence=1.0, box=C.BoundingBox(x_min=0.1, y_min=0.1, x_max=0.3, y_max=0.3))
    d.attributes.update({"occlusion": "none", "mount": "pole", "modifier": "none", "temporary": "false"})
    return out


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def _register(service: ServiceProcess, run: str, n: int) -> None:
    auth = [("authorization", f"Bearer {issue_token('bench', SECRET, audience=OPERATOR_AUDIENCE)}")]
    async with service.aio_channel() as channel:
        api = labels_pb2_grpc.LabelStoreServiceStub(channel)
        window = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with window:
                s = L.Sample(sample_id=hashlib.sha256(f"{run}/{i}".encode()).hexdigest(), object_key=f"snapshots/bench/{i}", content_type="image/png")
                s.provenance.vehicle_id, s.provenance.trigger_id = "bench", "bench"
                await api.RegisterSample(L.RegisterSampleRequest(sample=s), metadata=auth)

        await asyncio.gather(*(one(i) for i in range(n)))


async def _label(service: ServiceProcess, labellers: int) -> dict:
    checkout, submit = [], []
    labelled = 0

    async def labeller(k: int, api) -> None:
        nonlocal labelled
        annotation = _annotation()
        me = [("authorization", f"Bearer {issue_token(f'bench-{k}', SECRET, audience=OPERATOR_AUDIENCE, roles=('labeller',))}")]
        while True:
            t0 = time.perf_counter()
            r = await api.GetNextTask(L.GetNextTaskRequest(task="stop_sign"), metadata=me)
            checkout.append(time.perf_counter() - t0)
            if not r.HasField("lease"):
                return
            t0 = time.perf_counter()
            await api.SubmitLabel(L.SubmitLabelRequest(lease_id=r.lease.lease_id, idempotency_key=r.lease.lease_id, label=L.Label(annotation=annotation)), metadata=me)
            submit.append(time.perf_counter() - t0)
            labelled += 1

    channels = [service.aio_channel() for _ in range(5)]
    try:
        started = time.perf_counter()
        await asyncio.gather(*(labeller(k, labels_pb2_grpc.LabelStoreServiceStub(channels[k % 5])) for k in range(labellers)))
        wall = time.perf_counter() - started
    finally:
        for c in channels:
            await c.close()
    return {"labels": labelled, "wall": wall, "rate": labelled / wall, "checkout_p50": _percentile(checkout, 0.5), "checkout_p99": _percentile(checkout, 0.99), "submit_p99": _percentile(submit, 0.99)}


def _backend(name: str, url: str, samples: int) -> dict:
    env = {"OPERATOR_TOKEN_SECRET": SECRET, "DATABASE_URL": url, "LABEL_STORE_CONSUMER_GROUP": f"label-store-bench-{uuid.uuid4().hex[:6]}", "LABEL_STORE_DB_POOL_SIZE": "30", "LOG_LEVEL": "WARNING"}
    service = ServiceProcess(LABEL_STORE.package, LABEL_STORE.grpc, env).start(timeout=90)
    try:
        run = uuid.uuid4().hex[:8]
        asyncio.run(_register(service, run, samples))
        cpu0 = service.cpu_seconds()
        result = asyncio.run(_label(service, LABELLERS))
        result["server_cpu"] = service.cpu_seconds() - cpu0
    finally:
        service.stop()
    result["backend"] = name
    return result


def run(args, console) -> dict:
    from longtail_dev.infra import Launcher

    os.environ.update(Launcher(say=lambda m: console.print(f"[cyan]infra[/] {m}")).up(["postgres"]))
    samples = getattr(args, "label_samples", 3000)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"label-store: {samples} samples, {LABELLERS} labellers, SQLite ...")
        results.append(_backend("SQLite (WAL)", f"sqlite:///{tmp}/labels.db", samples))
    pg = os.environ["DATABASE_URL"]
    database = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    try:
        console.print(f"label-store: {samples} samples, {LABELLERS} labellers, PostgreSQL ...")
        results.append(_backend("PostgreSQL", pg.rsplit("/", 1)[0] + f"/{database}", samples))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.dispose()
    base = results[0]
    rows = [
        [r["backend"], f"{r['labels']:,}", f"{r['rate']:,.0f}", f"{r['checkout_p50'] * 1000:.1f}", f"{r['checkout_p99'] * 1000:.1f}", f"{r['submit_p99'] * 1000:.1f}", f"{r['server_cpu']:.1f}", f"{r['rate'] / base['rate']:.2f}x"]
        for r in results
    ]
    sqlite, postgres = results
    verdict = [
        f"PostgreSQL vs SQLite: {postgres['rate'] / sqlite['rate']:.2f}x label submissions/s, "
        f"checkout p99 {postgres['checkout_p99'] * 1000:.1f} ms vs {sqlite['checkout_p99'] * 1000:.1f} ms "
        f"({postgres['checkout_p99'] / sqlite['checkout_p99']:.2f}x)"
    ]
    return {
        "title": f"label-store: {LABELLERS} concurrent labellers, SQLite vs PostgreSQL",
        "columns": ["backend", "labels", "labels/s", "checkout p50 ms", "checkout p99 ms", "submit p99 ms", "server CPU-s", "vs SQLite"],
        "rows": rows,
        "verdict": verdict,
        "results": results,
    }
