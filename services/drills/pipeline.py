"""The whole loop running for a drill, and a hand that kills parts of it.

  cars (the simulator, paced to the wall clock) -> gateway -> trigger-evaluator (fleet-side
  trigger) / map-vision -> uploads -> label-store (on PostgreSQL) and inference (on Triton)
  -> simulated labellers -> a dataset version -> a trainer run -> a published model version

`Pipeline` starts the local infrastructure (if it is not running; it is left running), every
service as its own process (`demo.stack.Stack`) with the label store on a new PostgreSQL database,
publishes the bootstrap model as v1 PRODUCTION of the run's model line, creates two triggers (a
periodic one on the cars, a stop-sign one on the fleet side) and watches the topics from their
current end. `kill(target)` kills a service or an infrastructure part with -9 and starts it
again (services on the same ports; the callers ride it out: cars resend what was not
acknowledged, the operator's clients retry UNAVAILABLE, `longtail.grpc_client`). Used by the
fault matrix (`drills.matrix`) and the soak (`drills.soak`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from longtail import topics
from longtail.kafka import start_group_at_end

from drills.fleet import WORKER_GROUPS, TopicWatch

INFRA = ("kafka", "s3", "postgres", "triton")


@dataclass
class Fault:
    target: str
    phase: str
    at_s: float  # seconds from the pipeline's start
    back_after_s: float  # from the kill until it served again (the time it stayed dead included)


def _database(url: str, name: str) -> str:
    """A new PostgreSQL database `name` on the server of `url`; its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


class Pipeline:
    def __init__(self, seed: int = 0, say: Callable[[str], None] = print, down_s: float = 1.0) -> None:
        self.seed, self.say, self.down_s = seed, say, down_s
        self.run = uuid.uuid4().hex[:6]
        self.line = f"drill-{self.run}"  # the model line, the triggers' and the cars' prefix
        self.t0 = time.monotonic()
        # Services die with the thread that started them (PR_SET_PDEATHSIG): every start and
        # restart happens on this one thread, which lives as long as the pipeline.
        self._hand = ThreadPoolExecutor(1, thread_name_prefix="drill-hand")
        self._pending: list[Future] = []
        self.faults: list[Fault] = []
        self.watches: dict[str, TopicWatch] = {}
        self.trigger_ids: list[str] = []
        self._ours: set[str] = set()  # samples of the run's triggers (the ones its labellers label)

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Pipeline:
        from demo.stack import Stack
        from fleet_sim.bootstrap import train_bootstrap_model
        from longtail_dev.infra import Launcher
        from map_vision.seed import simulator_map, write_seed_file

        self.launcher = Launcher(say=lambda m: self.say(f"infra: {m}"))
        os.environ.update(self.launcher.up(INFRA))
        self.stack = Stack(self.line, self.say, manage_infra=False)
        try:
            self.stack.state.mkdir(parents=True, exist_ok=True)
            seed_map = write_seed_file(simulator_map(world_seed=self.seed), self.stack.state / "seed-map.json")
            self.stack.configure(fleet_model=self.line, seed_map=seed_map, label_store_db=_database(os.environ["DATABASE_URL"], self.line.replace("-", "_")))
            bootstrap = self.bootstrap
            for group, topic in WORKER_GROUPS:  # the trigger-evaluator's fleet worker: this run's records only
                start_group_at_end(bootstrap, group, [topic])
            self.watches = {
                "telemetry": TopicWatch(bootstrap, topics.TELEMETRY, lambda v: v.vehicle_id.startswith(self.line)),
                "fired": TopicWatch(bootstrap, topics.TRIGGERS_FIRED, lambda v: v.trigger_id.startswith(self.line)),
                "snapshots": TopicWatch(bootstrap, topics.SNAPSHOTS, lambda v: v.trigger_id.startswith(self.line)),
                "samples": TopicWatch(bootstrap, topics.SAMPLES_REGISTERED, lambda v: v.sample.provenance.trigger_id.startswith(self.line)),
                "prelabels": TopicWatch(bootstrap, topics.INFERENCE_RESULTS, lambda v: True),
                "labels": TopicWatch(bootstrap, topics.LABELS_CREATED, lambda v: v.provenance.trigger_id.startswith(self.line)),
            }
            for name in ("label-store", "trigger-evaluator", "trainer", "map-vision"):
                self._on_hand(self.stack.start, name)
            self.stack.clients()
            self.model = train_bootstrap_model(seed=3, log=lambda m: self.say(f"bootstrap: {m}"))
            self.model.eval()
            self._import_baseline()
            self._on_hand(self.stack.start, "gateway", GATEWAY_FLEET_MODEL=self.line)
            self._on_hand(self.stack.start, "inference", INFERENCE_MODEL_NAME=self.line)
            self.retire_triggers(lambda t: t.trigger_id.startswith("drill-"), "left active by an interrupted drill")
            self.trigger_ids = self._create_triggers()
            time.sleep(1.5)  # the gateway's catalog view follows the topic
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for watch in self.watches.values():
            watch.stop()
        if self.trigger_ids:
            self.retire_triggers(lambda t: t.trigger_id in self.trigger_ids, "drill finished")
        self._on_hand(self.stack.stop, True)
        self._hand.shutdown(wait=True)

    @property
    def bootstrap(self) -> str:
        return os.environ["KAFKA_BOOTSTRAP_SERVERS"]

    def consumer_groups(self) -> dict:
        """Every consumer group of the run: label -> (group id, the topics it reads)."""
        from demo.stack import GROUP_TOPICS

        groups = {name: (f"{name}-{self.stack.run_id}", [getattr(topics, t) for t in consumed]) for name, consumed in GROUP_TOPICS.items()}
        groups.update({group: (group, [topic]) for group, topic in WORKER_GROUPS})
        return groups

    def _on_hand(self, fn, *args, **kwargs):
        return self._hand.submit(fn, *args, **kwargs).result()

    # -- faults -------------------------------------------------------------------------------
    def kill(self, target: str, phase: str) -> Future:
        """kill -9 `target` (a service of the stack or an infrastructure part), start it again
        `down_s` later; returns at once (`wait_for_faults`)."""
        future = self._hand.submit(self._kill_and_restart, target, phase)
        self._pending.append(future)
        return future

    def killing(self) -> bool:
        return any(not f.done() for f in self._pending)

    def wait_for_faults(self) -> None:
        for future in self._pending:
            future.result()

    def _kill_and_restart(self, target: str, phase: str) -> Fault:
        at = time.monotonic()
        if target in INFRA:
            self.launcher.kill(target)
            time.sleep(self.down_s)
            self.launcher.up([target])
        else:
            proc = self.stack.processes[target]
            proc.kill()
            time.sleep(self.down_s)
            proc.start(timeout=240)
        fault = Fault(target, phase, round(at - self.t0, 1), round(time.monotonic() - at, 1))
        self.faults.append(fault)
        self.say(f"drill: kill -9 {target} ({phase}, t={fault.at_s:.0f}s), serving again {fault.back_after_s:.1f}s later")
        return fault

    # -- the loop's steps -------------------------------------------------------------------------
    def drive(self, cars: int, seconds: float, fps: float, progress: Callable | None = None, request_grace_s: float = 10.0):
        """The fleet drives `seconds` paced to the wall clock; the simulator's report."""
        from longtail.synthetic.world import World, WorldConfig

        from demo.experiment import drive_loop
        from fleet_sim.fleet import SimConfig, SimulatedFleet

        sim = SimConfig(
            cars=cars,
            duration_s=seconds,
            fps=fps,
            seed=self.seed,
            realtime=True,
            vehicle_prefix=self.line,
            ring_frames=int(min(seconds, 120) * fps) + 1,
            request_grace_s=request_grace_s,
            tls_dir=str(self.stack.pki),
        )
        fleet = SimulatedFleet(sim, World(WorldConfig(), seed=self.seed), self.model, store=self.stack.objects, gateway_address=self.stack.processes["gateway"].address, token_secret=self.stack.fleet_secret)
        return drive_loop().run_until_complete(fleet.run(progress))

    def uploaded(self, sim_report) -> set[str]:
        """The snapshots the gateway acknowledged for this run's triggers."""
        return {sid for sid, trigger in sim_report.snapshot_ids.items() if trigger in self.trigger_ids}

    def samples(self) -> list:
        from longtail.labels.v1 import labels_pb2 as L

        out, token = [], ""
        while True:
            page = self.stack.labels.ListSamples(L.ListSamplesRequest(filter=L.SampleFilter(trigger_ids=self.trigger_ids), page_size=500, page_token=token), timeout=30)
            out.extend(page.samples)
            token = page.next_page_token
            if not token:
                return out

    def wait_for_samples(self, uploaded: set[str], patience: float = 180.0) -> list:
        """Until every acknowledged upload is registered, or `patience` seconds without progress."""
        since, last = time.monotonic(), -1
        while True:
            samples = self.samples()
            missing = uploaded - {s.sample_id for s in samples}
            if not missing:
                return samples
            if len(missing) != last:
                last, since = len(missing), time.monotonic()
            elif time.monotonic() - since > patience:
                return samples
            time.sleep(1.0)

    def label(self, limit: int | None = None) -> int:
        """The simulated labellers work the queue (from the simulator's ground truth): the samples
        of the run's triggers; the number of labels submitted."""
        from demo.experiment import label_queue

        return label_queue(self.stack, self._truth, self.seed, limit=limit)

    def _truth(self, sample_id: str):
        if sample_id not in self._ours:
            self._ours = self._ours | {s.sample_id for s in self.samples()}
            if sample_id not in self._ours:
                # Requested by a fleet-side trigger someone else left active on the shared broker:
                # in this run's label store, but not the drill's to label (nor to count).
                return None
        try:
            return json.loads(self.stack.objects.get(f"groundtruth/{sample_id}.json"))
        except Exception:  # noqa: BLE001 - no ground truth: not labelled by the simulated labellers
            return None

    def dataset(self, sample_ids: set[str]):
        from longtail.labels.v1 import labels_pb2 as L

        request = L.CreateDatasetRequest(name=self.line, tasks=["stop_sign"], filter=L.SampleFilter(sample_ids=sorted(sample_ids)), split=L.SplitSpec(val_fraction=0.2, test_fraction=0.0), description="drill")
        return self.stack.labels.CreateDataset(request, metadata=self.stack.auth, timeout=120).dataset

    def train(self, dataset, epochs: int, on_progress: Callable | None = None, replay_samples: int = 400, timeout: float = 1200.0):
        """A trainer run on `dataset`, waited for; `on_progress(run)` is called while it runs."""
        from google.protobuf import struct_pb2

        from longtail.common.v1 import common_pb2 as C
        from longtail.models.v1 import trainer_pb2 as T

        hyperparameters = struct_pb2.Struct()
        hyperparameters.update({"replay_samples": replay_samples})  # synthetic common-case frames (no labels): a training phase long enough to die in
        spec = T.RunSpec(model_name=self.line, promote=False, seed=self.seed, epochs=epochs, hyperparameters=hyperparameters, datasets=[C.DatasetRef(name=dataset.name, version=dataset.version)])
        run_id = f"{self.line}-run"  # chosen here: a StartRun retried after a lost reply queues nothing twice
        self.stack.trainer.StartRun(T.StartRunRequest(spec=spec, run_id=run_id), metadata=self.stack.auth, timeout=30)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.stack.trainer.GetRun(T.GetRunRequest(run_id=run_id), timeout=30).run
            if run.status in (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED):
                return run
            if on_progress is not None:
                on_progress(run)
            time.sleep(0.3)
        raise TimeoutError(f"run {run_id} did not finish in {timeout:.0f}s")

    # -- set-up -------------------------------------------------------------------------------
    def _import_baseline(self) -> None:
        from longtail.common.v1 import common_pb2 as C
        from longtail.model import torchscript
        from longtail.models.v1 import trainer_pb2 as T

        request = T.ImportModelRequest(model_name=self.line, weights=torchscript.to_bytes(self.model), role=C.MODEL_ROLE_PRODUCTION, reason="the drill's baseline")
        self.stack.trainer.ImportModel(request, metadata=self.stack.auth, timeout=60)

    def _create_triggers(self) -> list[str]:
        """One trigger on the cars (every frame, at most one upload every 3 s: a periodic sample, so
        uploads keep coming while parts die) and one on the fleet side (a stop sign seen, decided by
        the trigger-evaluator on the telemetry, uploaded on request)."""
        from google.protobuf import duration_pb2

        from longtail.triggers.v1 import triggers_pb2 as S

        plans = [(f"{self.line}-edge", S.TRIGGER_SITE_EDGE, "true", S.FIRING_MODE_EVERY_FRAME), (f"{self.line}-fleet", S.TRIGGER_SITE_FLEET, "any(d.cls == stop_sign and d.conf >= 0.5)", S.FIRING_MODE_RISING_EDGE)]
        for trigger_id, site, expression, mode in plans:
            spec = S.TriggerSpec(
                name=trigger_id,
                expression=expression,
                site=site,
                task="stop_sign",
                firing_mode=mode,
                min_interval=duration_pb2.Duration(seconds=3),
                upload_budget=1_000_000,
                max_uploads_per_car_hour=2000,
                description="drill",
            )
            self.stack.catalog.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec), metadata=self.stack.auth, timeout=10)
            self.stack.catalog.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=self.stack.auth, timeout=10)
        return [trigger_id for trigger_id, *_ in plans]

    def retire_triggers(self, which: Callable, reason: str) -> None:
        """Active triggers of drills are beamed to every car on the broker: retire them once done."""
        from longtail.triggers.v1 import triggers_pb2 as S

        try:
            listed = self.stack.catalog.ListTriggers(S.ListTriggersRequest(states=[S.TRIGGER_STATE_ACTIVE, S.TRIGGER_STATE_PAUSED], page_size=1000), metadata=self.stack.auth, timeout=30).triggers
            for t in filter(which, listed):
                self.stack.catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=t.trigger_id, reason=reason), metadata=self.stack.auth, timeout=10)
        except Exception as exc:  # noqa: BLE001 - best effort at the end of a failed drill
            self.say(f"drill: could not retire triggers ({exc})")
