"""A simulated fleet: N cars drive the procedural world in lockstep, render their camera, run the
models the gateway beamed down (production, a shadow-mode candidate, trigger detectors; one
batched forward pass per model version per tick, see `fleet_sim.onboard`), evaluate their
triggers, stream telemetry through real gRPC sessions, report where the candidate disagrees with
production, and upload the frames that fire.

Ground truth never travels with telemetry or snapshots: after an upload the simulator writes it
to `groundtruth/<snapshot_id>.json` in the object store, where only simulated labellers read it.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import tarfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from longtail import predictions as predictions_mod
from longtail.auth import issue_token
from longtail.common.v1 import common_pb2
from longtail.fleet.v1 import fleet_pb2
from longtail.log import get_logger
from longtail.model import device
from longtail.triggerlang import CompiledTrigger, FiringOptions, TriggerState, compile_trigger
from longtail.triggers.v1 import triggers_pb2

from fleet_sim.car_client import CarLink
from fleet_sim.onboard import CarModels, Installed, ModelRejected, ModelShelf, detector_score, run_grouped

log = get_logger(__name__)

GROUND_TRUTH = "groundtruth/"
# A car retries an upload the gateway could not take in time (busy, restarting) with backoff.
UPLOAD_ATTEMPTS = 4
UPLOAD_BACKOFF_S = 1.0
RETRYABLE = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
CARS_PER_CHANNEL = 200


@dataclass
class SimConfig:
    cars: int = 10
    duration_s: float = 30.0  # simulated seconds
    fps: float = 10.0  # frames per second per car (simulated clock)
    batch_frames: int = 10  # frames per telemetry batch
    seed: int = 0
    realtime: bool = False  # pace the simulated clock to the wall clock
    ring_frames: int = 64  # recent frames a car keeps for uploads
    # After the last frame, how long the cars stay connected for upload requests of fleet-side
    # triggers (decided on the server, so they arrive after the frame; the simulated clock runs
    # faster than real time). Requested clips then end with the last frame the car has.
    request_grace_s: float = 0.0
    max_concurrent_uploads: int = 8
    vehicle_prefix: str = "sim"
    # Mutual TLS: a directory holding the fleet CA (longtail.pki: ca.pem, ca-key.pem); every car
    # gets its own certificate there (issued on first use) and its own connection. A gateway is
    # reached in plaintext only with `plaintext` (a gateway started with GRPC_PLAINTEXT).
    tls_dir: str = ""
    plaintext: bool = False


@dataclass
class SimReport:
    frames: int = 0
    frames_acked: int = 0
    batches_dropped: int = 0
    fires: dict[str, int] = field(default_factory=dict)
    uploads: int = 0
    uploads_existing: int = 0
    uploads_by_trigger: dict[str, int] = field(default_factory=dict)  # new content only (not already stored)
    snapshot_ids: dict[str, str] = field(default_factory=dict)  # every acknowledged upload: snapshot id -> trigger of its first upload
    upload_errors: int = 0  # uploads given up (after UPLOAD_ATTEMPTS for a transient failure)
    upload_retries: int = 0
    skipped_rate_limited: int = 0
    wall_seconds: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    models: dict[str, int] = field(default_factory=dict)  # "name@version" -> frames it ran on as production
    truth_frames: dict[str, int] = field(default_factory=dict)  # SimulatedFleet.truth_tags name -> frames whose ground truth matched
    shadow_frames: int = 0  # frames compared with a candidate in shadow mode
    shadow_disagreements: int = 0  # reports of a frame where they disagreed (one per task)


@dataclass
class ActiveTrigger:
    trigger: triggers_pb2.Trigger
    compiled: CompiledTrigger
    state: TriggerState
    upload_times: deque = field(default_factory=deque)  # simulated seconds of recent uploads


@dataclass
class PendingUpload:
    due_sequence: int  # upload once this frame exists (end of the capture window)
    fire_frame: fleet_pb2.Frame
    trigger: triggers_pb2.Trigger
    fire_id: str
    frames_before: int
    frames_after: int


class SimCar:
    """A car's perception, triggers and buffers; its network side is `link`."""

    def __init__(self, vehicle_id: str, body, models: CarModels, link: CarLink | None = None) -> None:
        self.vehicle_id = vehicle_id
        self.body = body  # longtail.synthetic.world.Car: pose over time
        self.models = models
        self.link = link
        self.sequence = 0
        self.triggers: dict[str, ActiveTrigger] = {}
        self.ring: deque = deque()  # (frame, image, ground truth)
        self.outgoing: list[fleet_pb2.Frame] = []
        self.pending_uploads: list[PendingUpload] = []

    def activate(self, trigger: triggers_pb2.Trigger) -> None:
        compiled = compile_trigger(trigger.spec.expression, FiringOptions.from_spec(trigger.spec), trigger.trigger_id, trigger.version)
        current = self.triggers.get(trigger.trigger_id)
        if current is None or current.trigger.version != trigger.version:
            self.triggers[trigger.trigger_id] = ActiveTrigger(trigger, compiled, compiled.new_state())

    def retire(self, trigger_id: str) -> None:
        self.triggers.pop(trigger_id, None)


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


def encode_clip(images: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i, image in enumerate(images):
            data = encode_png(image)
            info = tarfile.TarInfo(f"{i}.png")
            info.size = len(data)
            info.mtime = 0  # deterministic bytes, so the content hash is too
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def car_credentials(pki_dir: Path, vehicle_id: str) -> grpc.ChannelCredentials:
    """The car's TLS credentials: the fleet CA to trust and the car's own certificate (issued by
    that CA the first time)."""
    from longtail.pki import issue
    from longtail.tls import channel_credentials

    cars = pki_dir / "cars"
    if not (cars / f"{vehicle_id}.pem").exists():
        issue(pki_dir, vehicle_id, vehicle=True, out=cars)
    return channel_credentials(str(pki_dir / "ca.pem"), str(cars / f"{vehicle_id}.pem"), str(cars / f"{vehicle_id}-key.pem"))


class SimulatedFleet:
    def __init__(self, config: SimConfig, world, model, store=None, gateway_address: str | None = None, token_secret: str | None = None, truth_tags: dict[str, Callable[[list], bool]] | None = None) -> None:
        """`model` (a `MultiTaskNet` or `load_scripted` model: `.predict`, `.tasks`) is what the cars
        run until the gateway sends a production model; `store` (an ObjectStore) receives ground
        truth and serves beamed-down weights; without a gateway the fleet runs offline.
        `truth_tags` name predicates over a frame's ground truth whose matches are counted
        (`SimReport.truth_frames`), e.g. the base rate of a long-tail case."""
        from longtail.synthetic.world import Car

        self.config = config
        self.world = world
        self.store = store
        self.gateway_address = gateway_address
        self.token_secret = token_secret
        self.shelf = ModelShelf(store, device.preferred())
        initial = Installed(common_pb2.ModelRef(name="bootstrap", version=0), model)
        self.report = SimReport()
        self.cars = [SimCar(f"{config.vehicle_prefix}-{i:05d}", Car(world, seed=config.seed * 100_003 + i), CarModels(initial)) for i in range(config.cars)]
        self._applying = 0  # model commands being fetched and loaded
        self.truth_tags = dict(truth_tags or {})
        self._uploads: set[asyncio.Task] = set()
        self._upload_slots: asyncio.Semaphore | None = None

    async def _on_command(self, car: SimCar, command: fleet_pb2.Command) -> tuple[bool, str]:
        action = command.WhichOneof("action")
        if action == "activate_trigger":
            trigger = command.activate_trigger.trigger
            try:
                car.activate(trigger)
            except ValueError as exc:  # a trigger the car cannot compile is refused, not fatal
                return False, str(exc)
            return True, f"running {trigger.trigger_id} v{trigger.version}"
        if action == "retire_trigger":
            car.retire(command.retire_trigger.trigger_id)
            return True, "retired"
        if action == "request_upload":
            request = command.request_upload
            for frame, _image, _gt in car.ring:
                if frame.frame_id == request.frame_id:
                    trigger = car.triggers[request.trigger_id].trigger if request.trigger_id in car.triggers else triggers_pb2.Trigger(trigger_id=request.trigger_id, version=request.trigger_version)
                    car.pending_uploads.append(PendingUpload(frame.sequence + request.capture_window.frames_after, frame, trigger, request.fire_id, request.capture_window.frames_before, request.capture_window.frames_after))
                    return True, "queued"
            return False, "frame no longer in the buffer"
        if action in ("update_shadow_model", "update_trigger_model"):
            self._applying += 1
            try:
                return await self._install(car, command)
            finally:
                self._applying -= 1
        return False, f"unknown command {action!r}"

    async def _install(self, car: SimCar, command: fleet_pb2.Command) -> tuple[bool, str]:
        update = getattr(command, command.WhichOneof("action"))
        ref = update.model
        try:
            installed = Installed(ref, await self.shelf.get(ref, update.uri, update.sha256, update.size_bytes, update.weights))
        except ModelRejected as exc:
            log.warning("model refused by the car", vehicle=car.vehicle_id, model=f"{ref.name}@{ref.version}", reason=str(exc))
            return False, f"refused {ref.name}@{ref.version}: {exc}"
        models = car.models
        if isinstance(update, fleet_pb2.UpdateTriggerModel):
            models.detectors[update.detector_name or ref.name] = installed
            return True, f"detector {update.detector_name or ref.name} at {ref.name}@{ref.version}"
        promoted = models.candidate is not None and (models.candidate.ref.name, models.candidate.ref.version) == (ref.name, ref.version)
        self._send_reports(car, [models.flush()])  # the old pair's count, before the pair changes
        if update.role == common_pb2.MODEL_ROLE_CANDIDATE:
            models.candidate = installed
            return True, f"candidate {ref.name}@{ref.version} in shadow mode"
        models.production = installed
        if promoted:
            models.candidate = None
        return True, f"production {ref.name}@{ref.version}"

    def _send_reports(self, car: SimCar, reports: list) -> None:
        for report in reports:
            if report is None:
                continue
            self.report.shadow_disagreements += bool(report.differences)
            if car.link is not None:
                car.link.report_shadow(report)

    def _tick(self, clock: float) -> None:
        images, truths, poses = [], [], []
        from longtail.synthetic.render import render

        dt = 1.0 / self.config.fps
        for car in self.cars:
            pose = car.body.step(dt)
            image, truth = render(self.world, pose)
            images.append(image)
            truths.append(truth)
            poses.append(pose)
        batch = np.stack(images)
        production = run_grouped(batch, [car.models.production for car in self.cars])
        candidate = run_grouped(batch, [car.models.candidate for car in self.cars])
        detector_names = sorted({name for car in self.cars for name in car.models.detectors})
        detectors = {name: run_grouped(batch, [car.models.detectors.get(name) for car in self.cars]) for name in detector_names}
        seconds = int(clock)
        nanos = int((clock - seconds) * 1e9)
        for i, (car, image, truth, pose) in enumerate(zip(self.cars, images, truths, poses)):
            car.sequence += 1
            models = car.models
            frame = fleet_pb2.Frame(frame_id=f"{car.vehicle_id}:{car.sequence}", vehicle_id=car.vehicle_id, sequence=car.sequence, model=models.production.ref)
            frame.captured_at.seconds, frame.captured_at.nanos = seconds, nanos
            frame.ego.CopyFrom(pose)
            prod = production[i]
            assert prod is not None  # every car runs a production model
            frame.detections.extend(predictions_mod.to_detections(prod))
            running = f"{models.production.ref.name}@{models.production.ref.version}"
            self.report.models[running] = self.report.models.get(running, 0) + 1
            for name, installed in models.detectors.items():
                output = detectors[name][i]
                assert output is not None  # the car runs this detector
                score = detector_score(installed.model, output)
                frame.trigger_scores[f"{name}@{installed.ref.version}"] = score
                frame.trigger_scores[name] = score  # the newest version under its bare name
            if models.candidate is not None:
                frame.shadow_model.CopyFrom(models.candidate.ref)
                cand = candidate[i]
                assert cand is not None  # it runs the candidate
                frame.shadow_detections.extend(predictions_mod.to_detections(cand))
                self.report.shadow_frames += 1
                self._send_reports(car, models.compare(frame, prod, cand))
            for active in car.triggers.values():
                fire = active.compiled.evaluate(active.state, frame)
                if fire is None:
                    continue
                frame.edge_fires.add(trigger_id=fire.trigger_id, trigger_version=fire.version, fire_id=fire.fire_id, score=1.0)
                self.report.fires[fire.trigger_id] = self.report.fires.get(fire.trigger_id, 0) + 1
                if self._may_upload(active, clock):
                    car.pending_uploads.append(PendingUpload(car.sequence + fire.frames_after, frame, active.trigger, fire.fire_id, fire.frames_before, fire.frames_after))
                else:
                    self.report.skipped_rate_limited += 1
            for tag, matches in self.truth_tags.items():
                if matches(truth):
                    self.report.truth_frames[tag] = self.report.truth_frames.get(tag, 0) + 1
            car.ring.append((frame, image, truth))
            while len(car.ring) > self.config.ring_frames:
                car.ring.popleft()
            car.outgoing.append(frame)
            self.report.frames += 1
            if len(car.outgoing) >= self.config.batch_frames:
                if car.link is not None:
                    car.link.submit(car.outgoing)
                car.outgoing = []
            due = [p for p in car.pending_uploads if p.due_sequence <= car.sequence]
            if due:
                car.pending_uploads = [p for p in car.pending_uploads if p.due_sequence > car.sequence]
                for pending in due:
                    self._start_upload(car, pending)

    async def _serve_late_requests(self, grace_s: float) -> None:
        """Stay connected until no upload request came for `grace_s` (at most 5 x `grace_s`; telemetry
        acked first), then upload every requested clip with the frames the car has."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(car.link.drain(30) for car in self.cars if car.link is not None))
        quiet_since, seen, deadline = loop.time(), -1, loop.time() + 5 * grace_s
        while loop.time() - quiet_since < grace_s and loop.time() < deadline:
            waiting = sum(len(car.pending_uploads) for car in self.cars) + self.report.uploads
            if waiting != seen:
                seen, quiet_since = waiting, loop.time()
            await asyncio.sleep(0.1)
        for car in self.cars:
            due, car.pending_uploads = car.pending_uploads, []
            for pending in due:
                self._start_upload(car, pending)

    async def _connected(self, links: list[CarLink], link_tasks: list[asyncio.Task], timeout_s: float) -> None:
        """Until every car has its session, or a clear error: a car the gateway refused fails at
        once; otherwise which cars waited and what they met (a TLS gateway answers a plaintext car
        with UNAVAILABLE)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not all(link.connected.is_set() for link in links):
            for task in link_tasks:
                failure = task.exception() if task.done() and not task.cancelled() else None
                if failure is not None:
                    raise failure
            if loop.time() > deadline:
                errors: dict[str, int] = {}
                for link in links:
                    for reason, n in link.stats.errors.items():
                        errors[reason] = errors.get(reason, 0) + n
                stuck = [link.vehicle_id for link in links if not link.connected.is_set()]
                hint = " (a gateway with TLS needs SimConfig.tls_dir)" if self.config.plaintext else ""
                raise TimeoutError(f"{len(stuck)} of {len(links)} cars had no session with {self.gateway_address} after {timeout_s:.0f}s, e.g. {stuck[:3]}; errors {errors}{hint}")
            await asyncio.sleep(0.05)

    def _may_upload(self, active: ActiveTrigger, clock: float) -> bool:
        """The trigger's per-car limit (uploads per hour), on the simulated clock."""
        limit = active.trigger.spec.max_uploads_per_car_hour
        if limit <= 0:
            return True
        times = active.upload_times
        while times and times[0] <= clock - 3600:
            times.popleft()
        if len(times) >= limit:
            return False
        times.append(clock)
        return True

    def _start_upload(self, car: SimCar, pending: PendingUpload) -> None:
        clip = [(f, img, gt) for f, img, gt in car.ring if pending.fire_frame.sequence - pending.frames_before <= f.sequence <= pending.fire_frame.sequence + pending.frames_after]
        if not clip or car.link is None:
            return
        task = asyncio.create_task(self._upload(car, pending, clip))
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)

    async def _upload(self, car: SimCar, pending: PendingUpload, clip: list) -> None:
        fire = pending.fire_frame
        if len(clip) == 1:
            data, content_type = encode_png(clip[0][1]), "image/png"
        else:
            data, content_type = encode_clip([img for _f, img, _gt in clip]), "application/x-tar"
        header = fleet_pb2.SnapshotHeader(frame_id=fire.frame_id, trigger_id=pending.trigger.trigger_id, trigger_version=pending.trigger.version, fire_id=pending.fire_id, content_type=content_type)
        header.captured_at.CopyFrom(fire.captured_at)
        meta = header.metadata
        meta.ego.CopyFrom(fire.ego)
        meta.detections.extend(fire.detections)
        meta.model.CopyFrom(fire.model)
        for name, score in fire.trigger_scores.items():
            meta.trigger_scores[name] = score
        meta.clip_frame_ids.extend(f.frame_id for f, _img, _gt in clip)
        meta.image_height, meta.image_width = clip[0][1].shape[:2]
        slots, link = self._upload_slots, car.link
        assert slots is not None and link is not None  # uploads happen while run() connects the cars
        receipt = None
        for attempt in range(UPLOAD_ATTEMPTS):
            async with slots:
                try:
                    receipt = await link.upload(header, data)
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in RETRYABLE or attempt + 1 == UPLOAD_ATTEMPTS:
                        self.report.upload_errors += 1
                        log.warning("upload failed", vehicle=car.vehicle_id, code=exc.code().name, details=exc.details(), attempts=attempt + 1)
                        return
                    self.report.upload_retries += 1
            # Uploads are content-addressed (sha256), so a retry after a lost reply stores nothing twice.
            await asyncio.sleep(UPLOAD_BACKOFF_S * 2**attempt)
        assert receipt is not None  # the last attempt either succeeded or returned
        self.report.uploads += 1
        self.report.uploads_existing += receipt.already_existed
        self.report.snapshot_ids.setdefault(receipt.snapshot_id, pending.trigger.trigger_id)
        if not receipt.already_existed:
            tid = pending.trigger.trigger_id
            self.report.uploads_by_trigger[tid] = self.report.uploads_by_trigger.get(tid, 0) + 1
        if self.store is not None:
            truth = {
                "snapshot_id": receipt.snapshot_id,
                "vehicle_id": car.vehicle_id,
                "frames": [{"frame_id": f.frame_id, "objects": [o.to_dict() for o in gt]} for f, _img, gt in clip],
                "firing_frame_id": fire.frame_id,
            }
            await asyncio.to_thread(self.store.put_at, f"{GROUND_TRUTH}{receipt.snapshot_id}.json", json.dumps(truth).encode(), "application/json")

    async def run(self, on_progress: Callable[[SimReport, float], None] | None = None) -> SimReport:
        started = time.perf_counter()
        self._upload_slots = asyncio.Semaphore(self.config.max_concurrent_uploads)
        channels: list[grpc.aio.Channel] = []
        link_tasks: list[asyncio.Task] = []
        if self.gateway_address:
            if self.token_secret is None:
                raise ValueError("token_secret: the cars need it to sign their tokens for the gateway")
            if bool(self.config.tls_dir) == self.config.plaintext:
                raise ValueError("SimConfig: give tls_dir (the fleet CA the cars' certificates come from) or plaintext=True, one of them")
            links: list[CarLink] = []
            for i, car in enumerate(self.cars):
                if self.config.tls_dir:  # a certificate is a connection's: one channel per car
                    channels.append(grpc.aio.secure_channel(self.gateway_address, car_credentials(Path(self.config.tls_dir), car.vehicle_id)))
                elif i % CARS_PER_CHANNEL == 0:
                    channels.append(grpc.aio.insecure_channel(self.gateway_address))
                token = issue_token(car.vehicle_id, self.token_secret)
                link = car.link = CarLink(channels[-1], car.vehicle_id, token, functools.partial(self._on_command, car))
                links.append(link)
                link_tasks.append(asyncio.create_task(link.run()))
            await self._connected(links, link_tasks, timeout_s=60)
            await asyncio.sleep(0.2)  # let welcome commands (active triggers, models) arrive
            # Models being fetched and loaded; a car applies its commands one by one, so wait until
            # nothing was applying for a few polls in a row.
            deadline, idle = time.monotonic() + 120, 0
            while idle < 6 and time.monotonic() < deadline:
                idle = 0 if self._applying else idle + 1
                await asyncio.sleep(0.05)
        ticks = int(self.config.duration_s * self.config.fps)
        clock = time.time()
        started = time.perf_counter()
        for tick in range(ticks):
            self._tick(clock)
            clock += 1.0 / self.config.fps
            if on_progress is not None:
                on_progress(self.report, (tick + 1) / ticks)
            if self.config.realtime:  # on an absolute schedule: a slow tick is caught up, frame times stay the wall clock's
                await asyncio.sleep(max(0.0, started + (tick + 1) / self.config.fps - time.perf_counter()))
            else:
                await asyncio.sleep(0)
        for car in self.cars:
            self._send_reports(car, [car.models.flush()])
            if car.outgoing and car.link is not None:
                car.link.submit(car.outgoing)
                car.outgoing = []
        if self.gateway_address and self.config.request_grace_s > 0:
            await self._serve_late_requests(self.config.request_grace_s)
        if self._uploads:
            await asyncio.gather(*self._uploads, return_exceptions=True)
        for car in self.cars:
            if car.link is not None:
                await car.link.drain(30)
                car.link.stop()
        if link_tasks:  # goodbye sent after everything queued; the gateway then ends each session
            await asyncio.wait(link_tasks, timeout=10)
        for task in link_tasks:
            task.cancel()
        await asyncio.gather(*link_tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
        for car in self.cars:
            if car.link is not None:
                stats = car.link.stats
                self.report.frames_acked += stats.frames_acked
                self.report.batches_dropped += stats.batches_dropped
                for key, value in stats.errors.items():
                    self.report.errors[key] = self.report.errors.get(key, 0) + value
        self.report.wall_seconds = time.perf_counter() - started
        return self.report
