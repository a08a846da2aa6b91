"""fleet-gateway benchmarks against a real gateway process, real Kafka and S3.

1. Ingest: telemetry frames acked into Kafka, batched sessions (the product path) vs a naive
   unary one-frame-per-call endpoint, same run. Reported per wall second and per gateway
   CPU-second (the client shares the machine, so CPU-seconds isolate the gateway's own cost).
   Targets: >= 50k frames/s per core, >= 10x the naive path.
2. Beam-down: N connected cars; time from producing a catalog record until 99% of them
   received the activation. Target < 1 s for 10,000 cars. (What keeps this fair to the
   gateway although the cars share one client process: see _beam_down.)
3. Memory per connected car in the gateway (RSS delta / cars). Target < 20 KB. grpc's own
   share is most of it: a bare grpc.aio server whose handler only reads the stream holds
   ~22 KB per open bidirectional stream, ~19 KB with the experiment fuse_filters the gateway
   runs with (grpcio 1.81; docs/gateway.md, "Memory per car").

Each is measured twice in the same run, on a plaintext gateway and on a TLS one, and the ratios
reported (issue #18). Ingest over TLS is mutual TLS as cars do it: every car its own certificate
(a development CA, longtail.pki), hence its own connection, in both arms so that only TLS
differs. Beam-down over TLS is server TLS with the cars sharing connections as in the plaintext
arm (200 per channel): a certificate is a connection's, and ten thousand client handshakes from
one process would time the client, not the gateway.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import grpc
from rich.progress import Progress

from longtail import topics
from longtail.auth import issue_token
from longtail.fleet.v1 import fleet_pb2, fleet_pb2_grpc
from longtail.kafka import Producer
from longtail.registry import GATEWAY
from longtail.triggers.v1 import events_pb2 as trigger_events
from longtail.triggers.v1 import triggers_pb2

from longtail_dev.smoke import telemetry_batch
from longtail_dev.supervisor import ServiceProcess

SECRET = "bench-fleet-secret-0123456789abcdefghij"
CARS_PER_CHANNEL = 200


def start_gateway(pki: Path | None = None) -> ServiceProcess:
    """A gateway for the bench; with `pki` (a CA directory) on TLS, client certificates verified
    when presented (cars with their own certificate, or without one over server TLS)."""
    env = {"FLEET_TOKEN_SECRET": SECRET, "GATEWAY_MAX_BATCHES_PER_SECOND": "100000", "GATEWAY_MAX_BATCH_FRAMES": "1000", "GATEWAY_SESSION_QUEUE": "64"}
    if pki is not None:
        env.update(GRPC_TLS_CERT=str(pki / "gateway.pem"), GRPC_TLS_KEY=str(pki / "gateway-key.pem"), GRPC_TLS_CA=str(pki / "ca.pem"), GRPC_TLS_CLIENT_AUTH="optional")
    else:
        env["GRPC_PLAINTEXT"] = "true"  # the baseline arm, explicitly
    return ServiceProcess(GATEWAY.package, GATEWAY.grpc, env).start()


def _car_channel(address: str, pki: Path | None, vid: str) -> grpc.aio.Channel:
    """One connection per car: with its own certificate under TLS (mutual TLS)."""
    if pki is None:
        return grpc.aio.insecure_channel(address)
    from fleet_sim.fleet import car_credentials

    return grpc.aio.secure_channel(address, car_credentials(pki, vid))


def _shared_channel(address: str, pki: Path | None) -> grpc.aio.Channel:
    if pki is None:
        return grpc.aio.insecure_channel(address)
    from longtail.tls import channel_credentials

    return grpc.aio.secure_channel(address, channel_credentials(str(pki / "ca.pem")))


async def _batched(address: str, cars: int, batches_per_car: int, frames_per_batch: int, pki: Path | None = None) -> int:
    async def car(channel, vid):
        prebuilt = [fleet_pb2.CarMessage(telemetry=fleet_pb2.TelemetryBatch(batch_seq=seq + 1, frames=telemetry_batch(vid, seq * frames_per_batch, frames_per_batch).frames)) for seq in range(batches_per_car)]
        window = asyncio.Semaphore(8)

        async def requests():
            yield fleet_pb2.CarMessage(hello=fleet_pb2.Hello(vehicle_id=vid, auth_token=issue_token(vid, SECRET)))
            for message in prebuilt:
                await window.acquire()
                yield message

        call = fleet_pb2_grpc.FleetGatewayServiceStub(channel).Session(requests())
        acked = 0
        async for message in call:
            if message.WhichOneof("payload") == "ack":
                acked += message.ack.frames_accepted
                window.release()
                if acked >= batches_per_car * frames_per_batch:
                    call.cancel()
                    break
            elif message.WhichOneof("payload") == "error":
                raise RuntimeError(message.error.message)
        return acked

    vehicles = [f"bench-{uuid.uuid4().hex[:6]}" for _ in range(cars)]
    channels = [_car_channel(address, pki, vid) for vid in vehicles]
    try:
        return sum(await asyncio.gather(*(car(channel, vid) for channel, vid in zip(channels, vehicles, strict=True))))
    finally:
        for channel in channels:
            await channel.close()


async def _unary(address: str, callers: int, calls_per_caller: int) -> int:
    async def caller(channel):
        vid = f"bench-{uuid.uuid4().hex[:6]}"
        token = issue_token(vid, SECRET)
        stub = fleet_pb2_grpc.FleetGatewayServiceStub(channel)
        frames = telemetry_batch(vid, 0, calls_per_caller).frames
        for frame in frames:
            await stub.PublishTelemetry(fleet_pb2.PublishTelemetryRequest(vehicle_id=vid, auth_token=token, frame=frame))
        return calls_per_caller

    channel = grpc.aio.insecure_channel(address)
    try:
        return sum(await asyncio.gather(*(caller(channel) for _ in range(callers))))
    finally:
        await channel.close()


def _measure(gateway: ServiceProcess, coroutine) -> tuple[int, float, float]:
    cpu0, t0 = gateway.cpu_seconds(), time.perf_counter()
    frames = asyncio.run(coroutine)
    return frames, time.perf_counter() - t0, gateway.cpu_seconds() - cpu0


async def _beam_down(address: str, bootstrap: str, cars: int, gateway: ServiceProcess, progress: Progress, pki: Path | None = None) -> dict:
    """Connect `cars` simulated cars, then time one catalog record until each car has it.

    Kept fair to the gateway, whose latency this is (the cars here share one client process and
    the machine's cores with it, where real cars each have their own):
    - the producer is connected (idempotent-producer handshake, topic metadata) before the clock
      starts, so the time is the record's path Kafka -> gateway -> cars, not a producer's start-up;
    - the client's event loop is never blocked while timing (no synchronous flush);
    - a car that has the record stays connected and idle, as a real car does: cancelling calls on
      receipt made the gateway tear down thousands of sessions and the client format a traceback
      per cancel (grpc does that) while the remaining cars were still being timed.
    """
    trigger_id = f"bench-{uuid.uuid4().hex[:8]}"
    channels = [_shared_channel(address, pki) for _ in range((cars + CARS_PER_CHANNEL - 1) // CARS_PER_CHANNEL)]
    welcomed = asyncio.Event()
    all_received = asyncio.Event()
    stop = asyncio.Event()  # ends every car's request stream (a graceful goodbye) after timing
    count = {"welcomed": 0}
    received: list[float] = []
    task = progress.add_task(f"connecting {cars:,} cars" + (" over TLS" if pki else ""), total=cars)

    producer = Producer(bootstrap, "bench")
    producer.produce(topics.TRIGGER_CATALOG, f"{trigger_id}-warmup", None)  # tombstone of an unknown id: no broadcast
    await asyncio.to_thread(producer.flush)

    async def car(i: int):
        vid = f"bench-{i}-{uuid.uuid4().hex[:4]}"

        async def requests():
            yield fleet_pb2.CarMessage(hello=fleet_pb2.Hello(vehicle_id=vid, auth_token=issue_token(vid, SECRET)))
            await stop.wait()

        call = fleet_pb2_grpc.FleetGatewayServiceStub(channels[i // CARS_PER_CHANNEL]).Session(requests())
        async for message in call:
            kind = message.WhichOneof("payload")
            if kind == "welcome":
                count["welcomed"] += 1
                progress.update(task, completed=count["welcomed"])
                if count["welcomed"] == cars:
                    welcomed.set()
            elif kind == "command" and message.command.activate_trigger.trigger.trigger_id == trigger_id:
                received.append(time.perf_counter())
                if len(received) == cars:
                    all_received.set()

    rss_before = gateway.rss_bytes()
    already_active = _active_edge_triggers(gateway)
    tasks = [asyncio.create_task(car(i)) for i in range(cars)]
    await asyncio.wait_for(welcomed.wait(), timeout=600)
    await asyncio.sleep(2)  # let the gateway settle before reading its memory
    rss_after = gateway.rss_bytes()

    spec = triggers_pb2.TriggerSpec(name=trigger_id, expression="count(stop_sign) >= 1", site=triggers_pb2.TRIGGER_SITE_EDGE, upload_budget=10, max_uploads_per_car_hour=1)
    record = trigger_events.TriggerRecord(trigger=triggers_pb2.Trigger(trigger_id=trigger_id, version=1, spec=spec, state=triggers_pb2.TRIGGER_STATE_ACTIVE))
    sent = time.perf_counter()
    producer.produce(topics.TRIGGER_CATALOG, trigger_id, record)
    try:
        await asyncio.wait_for(all_received.wait(), timeout=120)
    except TimeoutError:
        pass
    delays = sorted(r - sent for r in received)
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=60)
    for t in pending:
        t.cancel()
    producer.produce(topics.TRIGGER_CATALOG, trigger_id, None)  # tombstone: leave no bench trigger active
    await asyncio.to_thread(producer.close)
    for channel in channels:
        await channel.close()
    p = lambda q: delays[min(len(delays) - 1, int(q * len(delays)))] if delays else float("nan")  # noqa: E731
    return {"cars": cars, "received": len(delays), "p50": p(0.5), "p99": p(0.99), "rss_per_car": (rss_after - rss_before) / cars, "already_active_triggers": already_active}


def _active_edge_triggers(gateway: ServiceProcess) -> int:
    """Edge triggers the gateway already beams to every car that connects (its metric). Each car
    is welcomed with all of them, so a broker full of earlier tests' triggers inflates both the
    memory per car and the beam-down time."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=10).read().decode()
    for family in text_string_to_metric_families(text):
        if family.name == "longtail_gateway_active_edge_triggers":
            return int(sum(sample.value for sample in family.samples))
    return 0


def _arm(args, console, bootstrap: str, pki: Path | None) -> dict:
    """Ingest (batched, and on plaintext the naive baseline) and beam-down on one gateway."""
    gateway = start_gateway(pki)
    out: dict = {}
    try:
        frames_per_batch = 200
        cars = 4
        batches = max(1, args.gateway_frames // (cars * frames_per_batch))
        what = "TLS" if pki else "plaintext"
        with Progress(console=console, transient=True) as progress:
            t = progress.add_task(f"ingest over {what}", total=None)
            asyncio.run(_batched(gateway.address, 2, 5, frames_per_batch, pki))  # warm-up: connections, JIT-free paths, topic metadata
            out["batched"] = _measure(gateway, _batched(gateway.address, cars, batches, frames_per_batch, pki))
            if pki is None:
                unary_calls = max(16, args.gateway_frames // 100)
                out["naive"] = _measure(gateway, _unary(gateway.address, 16, unary_calls // 16))
            progress.remove_task(t)
            out["beam"] = asyncio.run(_beam_down(gateway.address, bootstrap, args.cars or 10_000, gateway, progress, pki))
    finally:
        gateway.stop()
    return out


def run(args, console) -> dict:
    import os
    import tempfile

    from longtail.pki import init_ca, issue

    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    with tempfile.TemporaryDirectory(prefix="bench-gateway-pki-") as tmp:
        pki = Path(tmp)
        init_ca(pki)
        issue(pki, "gateway")
        plain = _arm(args, console, bootstrap, None)
        tls = _arm(args, console, bootstrap, pki)
    batched, naive, beam = plain["batched"], plain["naive"], plain["beam"]
    tls_batched, tls_beam = tls["batched"], tls["beam"]

    def rates(result):
        frames, wall, cpu = result
        return frames / wall, frames / cpu if cpu > 0 else float("nan")

    b_wall, b_cpu = rates(batched)
    n_wall, n_cpu = rates(naive)
    t_wall, t_cpu = rates(tls_batched)
    rows = [
        ["ingest: batched session (200 frames/batch)", f"{batched[0]:,}", f"{b_wall:,.0f}", f"{b_cpu:,.0f}", f"{b_wall / n_wall:.1f}x"],
        ["ingest: batched session over mutual TLS (a certificate per car)", f"{tls_batched[0]:,}", f"{t_wall:,.0f}", f"{t_cpu:,.0f}", f"{t_wall / n_wall:.1f}x"],
        ["ingest: naive unary, 1 frame/call (baseline)", f"{naive[0]:,}", f"{n_wall:,.0f}", f"{n_cpu:,.0f}", "1.0x"],
    ]
    verdict = [
        f"ingest per gateway core: {b_cpu:,.0f} frames/CPU-s (target >= 50,000: {'met' if b_cpu >= 50_000 else 'NOT met'}); batched vs naive {b_wall / n_wall:.1f}x (target >= 10x: {'met' if b_wall / n_wall >= 10 else 'NOT met'})",
        f"ingest over mutual TLS: {t_cpu:,.0f} frames/CPU-s (target >= 50,000: {'met' if t_cpu >= 50_000 else 'NOT met'}); TLS / plaintext: {t_cpu / b_cpu:.2f} per gateway CPU-s, {t_wall / b_wall:.2f} per wall second",
        f"beam-down to {beam['cars']:,} cars: {beam['received']:,} received, p50 {beam['p50'] * 1000:.0f} ms, p99 {beam['p99'] * 1000:.0f} ms (target p99 < 1000 ms: {'met' if beam['p99'] < 1 else 'NOT met'})",
        f"beam-down over TLS: {tls_beam['received']:,} received, p50 {tls_beam['p50'] * 1000:.0f} ms, p99 {tls_beam['p99'] * 1000:.0f} ms"
        + f" (target p99 < 1000 ms: {'met' if tls_beam['p99'] < 1 else 'NOT met'}); TLS / plaintext p99: {tls_beam['p99'] / beam['p99']:.2f}",
        f"gateway memory per connected car: {beam['rss_per_car'] / 1024:.1f} KiB, over TLS {tls_beam['rss_per_car'] / 1024:.1f} KiB (target < 20 KB: {'met' if beam['rss_per_car'] < 20_000 else 'NOT met'})",
        f"edge triggers already active when the cars connected: {beam['already_active_triggers']}"
        + (" (each car gets them all on connect: memory and beam-down are worse than on a fresh broker; use a fresh LONGTAIL_STATE_DIR for comparable figures)" if beam["already_active_triggers"] > 5 else ""),
    ]
    return {
        "title": "fleet-gateway: ingest, beam-down, memory; plaintext and TLS",
        "columns": ["path", "frames", "frames/s (wall)", "frames per gateway CPU-s", "vs naive"],
        "rows": rows,
        "verdict": verdict,
        "beam_down": beam,
        "beam_down_tls": tls_beam,
        "tls_ratio": {"ingest_cpu": t_cpu / b_cpu, "ingest_wall": t_wall / b_wall, "beam_down_p99": tls_beam["p99"] / beam["p99"]},
    }
