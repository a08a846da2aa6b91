"""`longtail demo`: the data-engine loop on real processes and real infrastructure.

  infra up -> gateway, trigger-evaluator, label-store, inference, trainer (separate processes)
  -> baseline (bootstrap model, common cases only) published as PRODUCTION for two model lines
  -> unit-test suites (frames rendered from the simulator, registered as samples)
  -> operator labels a small seed set and the trainer fits an occluded-stop-sign trigger detector,
     which the gateway beams to the cars (`score("occluded_stop_<run>")` in a trigger)
  -> operator creates, backtests and activates edge triggers
  -> per iteration: the simulated fleet drives; triggers fire on the cars; uploads become samples;
     simulated labellers (error rate 0.02) label them; a dataset version per arm; the trainer
     retrains from production and the gate certifies (or refuses); an accepted triggered-arm
     version is a CANDIDATE: the fleet runs it in shadow mode for a short drive, `CompareModels`
     sums up what the cars reported, and the operator promotes it to PRODUCTION (the cars install
     it for the next drive); suite pass rates recorded
  -> report (Markdown + PNG) in --out.

Three arms share the fleet, the label store and the suites, each with its own model line:
  * triggered:   the operator's triggers (what the data engine does); its labels include the
                 detector's seed set;
  * random:      a periodic sampling trigger (content-blind, i.e. random fleet frames), restricted
                 to at most the same number of labels as the triggered arm (same label budget);
  * uncertainty: plain uncertainty sampling: of the same random fleet frames, the ones its own
                 PRODUCTION model is least sure about, same label budget.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import secrets
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
import numpy as np

SUITE_DIR = Path(__file__).resolve().parents[2] / "suites"
BOOTSTRAP_SEED = 3  # the fleet's shadow model and the baseline (cached by fleet_sim.bootstrap)
ERROR_RATE = 0.02
OCCLUDED = "any(d.cls == stop_sign and d.attr.occlusion == foliage)"  # label predicate of the detector's positives

SERVICES = {
    "gateway": ("gateway", "longtail.fleet.v1.FleetGatewayService"),
    "trigger-evaluator": ("trigger_evaluator", "longtail.triggers.v1.TriggerCatalogService"),
    "label-store": ("label_store", "longtail.labels.v1.LabelStoreService"),
    "inference": ("inference", "longtail.inference.v1.InferenceService"),
    "trainer": ("trainer", "longtail.models.v1.TrainerService"),
    "map-vision": ("map_vision", "longtail.mapvision.v1.MapVisionService"),
}


@dataclass
class DemoConfig:
    cars: int = 8
    iterations: int = 2
    budget: int = 60  # labels per arm per iteration (the cars' upload limits are derived from it)
    duration_s: float = 60.0  # simulated seconds the fleet drives per iteration
    suite_cases: int = 20  # cases per suite
    seed_examples: int = 20  # labelled positives (and twice as many negatives) the trigger detector learns from
    shadow_s: float = 10.0  # simulated seconds the fleet runs a candidate in shadow mode before promotion
    replay_samples: int = 400  # synthetic common-case frames each run rehearses (against forgetting; no labels)
    epochs: int = 6
    seed: int = 0
    out: Path = Path("out/demo")
    triton: bool = True  # inference (pre-labels) needs Triton
    prometheus: bool = True  # a local Prometheus scraping every service (skipped with a note if not installed)
    manage_infra: bool = True  # start the infrastructure (and stop it unless keep_running)
    keep_running: bool = False


@dataclass
class TriggerStats:
    trigger_id: str
    arm: str
    expression: str
    backtest_fires: int = 0
    backtest_frames: int = 0
    fires: int = 0
    uploads: int = 0  # distinct samples registered with this trigger's provenance
    true_positive: int = 0  # uploads whose firing frame holds an occluded stop sign (ground truth)
    site: str = "edge"  # edge: fires counted by the cars; fleet: by the trigger evaluator (GetYield)


@dataclass
class ArmIteration:
    iteration: int
    arm: str
    labels: int  # cumulative labels in the arm's dataset
    dataset: str
    run_id: str = ""
    status: str = ""
    accepted: bool = False
    version: int = 0
    reasons: list[str] = field(default_factory=list)
    pass_rates: dict[str, float] = field(default_factory=dict)  # the arm's PRODUCTION after the iteration
    candidate_pass_rates: dict[str, float] = field(default_factory=dict)
    datasets_used: list[str] = field(default_factory=list)
    shadow: dict = field(default_factory=dict)  # fleet evidence before promotion (CompareModels)


@dataclass
class DemoResult:
    run: str
    config: dict
    suites: dict[str, int] = field(default_factory=dict)  # suite -> cases
    baseline: dict[str, float] = field(default_factory=dict)
    triggers: list[TriggerStats] = field(default_factory=list)
    iterations: list[ArmIteration] = field(default_factory=list)
    fleet: list[dict] = field(default_factory=list)
    labels_spent: dict[str, int] = field(default_factory=dict)  # arm -> labels in its training data (triggered: with the detector's seed set)
    labels_total: int = 0  # every label the simulated labellers gave (including suite samples)
    detectors: list[dict] = field(default_factory=list)  # the trigger detector's versions: iteration, samples, gate
    base_rate: float = 0.0  # share of all fleet frames with an occluded stop sign (ground truth)
    base_rate_random_uploads: float = 0.0  # the same share among the random arm's uploads
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        d = asdict(self)
        d["config"] = {k: str(v) for k, v in d["config"].items()}
        return json.dumps(d, indent=2, sort_keys=True)


class Demo:
    def __init__(self, config: DemoConfig, say: Callable[[str], None] = print) -> None:
        self.config = config
        self.say = say
        self.run_id = uuid.uuid4().hex[:6]
        self.operator_secret = secrets.token_hex(24)
        self.fleet_secret = secrets.token_hex(24)
        self.processes: dict[str, object] = {}
        self.launcher = None
        self.result = DemoResult(run=self.run_id, config=asdict(config))
        self.arms = {"triggered": f"demo-{self.run_id}", "random": f"demo-{self.run_id}-random", "uncertainty": f"demo-{self.run_id}-uncertainty"}
        self.truth: dict[str, dict] = {}
        self.counted: set[str] = set()
        self.triggers: dict[str, TriggerStats] = {}
        self.pending_uploads = 0  # uploads of drives not yet accounted (collect_samples)
        self.detector_name = ""  # the published trigger detector, if any
        self.seed_labels = 0  # labels spent on the detector's seed set

    # ------------------------------------------------------------------ plumbing
    @property
    def auth(self):
        from longtail.auth import OPERATOR_AUDIENCE, issue_token

        return [("authorization", f"Bearer {issue_token('demo-operator', self.operator_secret, audience=OPERATOR_AUDIENCE)}")]

    def infra_up(self) -> None:
        from longtail.infra import Launcher

        if self.config.manage_infra:
            self.launcher = Launcher(say=lambda m: self.say(f"[cyan]infra[/] {m}"))
            names = ["kafka", "s3", "postgres"] + (["triton"] if self.config.triton else [])
            if self.config.prometheus:
                if shutil.which("prometheus"):
                    names.append("prometheus")
                else:
                    self.result.notes.append("no local Prometheus: `prometheus` is not installed (apt-get install prometheus; scripts/bootstrap does it as root)")
            os.environ.update(self.launcher.up(names))

    def start_services(self) -> None:
        from longtail.supervisor import ServiceProcess

        state = Path(os.environ.get("LONGTAIL_STATE_DIR", Path.home() / ".local/state/longtail")) / "demo" / self.run_id
        state.mkdir(parents=True, exist_ok=True)
        self.state = state
        common = {"OPERATOR_TOKEN_SECRET": self.operator_secret}
        env = {
            "label-store": {**common, "DATABASE_URL": f"sqlite:///{state / 'labels.db'}", "LABEL_STORE_CONSUMER_GROUP": f"label-store-{self.run_id}",
                            "LABEL_STORE_DATA_DIR": str(state)},
            "gateway": {"FLEET_TOKEN_SECRET": self.fleet_secret, "GATEWAY_FLEET_MODEL": self.arms["triggered"]},
            "trigger-evaluator": dict(common),
            "inference": {"INFERENCE_MODEL_NAME": self.arms["triggered"], "INFERENCE_CONSUMER_GROUP": f"inference-{self.run_id}"},
            # The demo starts every run itself; the label consumer runs as in production (its lag
            # and progress are on the dashboards) with a threshold no demo reaches.
            "trainer": {**common, "TRAINER_MODEL_NAME": self.arms["triggered"], "TRAINER_LABEL_THRESHOLD": "1000000", "TRAINER_THREADS": "2",
                        "TRAINER_CONSUMER_GROUP": f"trainer-{self.run_id}"},
            # Seeded with the simulator's deliberately imperfect map (missing and stale features).
            "map-vision": {**common, "MAP_VISION_SEED_FILE": str(self._seed_map(state)), "MAP_VISION_CONSUMER_GROUP": f"map-vision-{self.run_id}"},
        }
        names = ["label-store", "gateway", "trigger-evaluator", "trainer", "map-vision"]
        self._start_env = env
        # This run's consumers keep their state in new databases (or in memory): they start at the
        # end of their topics, not at what earlier runs on a kept broker produced.
        from longtail import topics
        from longtail.kafka import start_group_at_end

        for group, consumed in ((f"label-store-{self.run_id}", (topics.SNAPSHOTS, topics.INFERENCE_RESULTS)),
                                (f"inference-{self.run_id}", (topics.SNAPSHOTS,)), (f"map-vision-{self.run_id}", (topics.TELEMETRY,)),
                                (f"trainer-{self.run_id}", (topics.LABELS_CREATED,))):
            start_group_at_end(os.environ["KAFKA_BOOTSTRAP_SERVERS"], group, consumed)

        def start(name: str):
            if name == "trainer":
                env[name]["LABEL_STORE_ADDR"] = self.processes["label-store"].address
            module, health = SERVICES[name]
            proc = ServiceProcess(module, health, self._start_env[name], log_path=self.state / "logs" / f"{name}.log")
            self.processes[name] = proc  # registered before start: stop() reaches it on failure
            proc.start(timeout=240)
            self.say(f"[green]service[/] {name} serving on {proc.address} (pid {proc.proc.pid})")

        self._start = start
        # From the main thread, one by one: the children die with the thread that started them
        # (PR_SET_PDEATHSIG in longtail.supervisor), so a worker thread must not start them.
        for name in names:
            start(name)

    def _seed_map(self, state: Path) -> Path:
        from map_vision.seed import simulator_map, write_seed_file

        return write_seed_file(simulator_map(world_seed=self.config.seed), state / "seed-map.json")

    def stop(self) -> None:
        for name, proc in reversed(list(self.processes.items())):
            try:
                proc.stop(timeout=30)
                self.say(f"[yellow]service[/] {name} stopped")
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                self.say(f"[red]service[/] {name}: {exc}")
        if self.launcher is not None and not self.config.keep_running:
            self.launcher.down()

    def stubs(self) -> None:
        from longtail.labels.v1 import labels_pb2_grpc
        from longtail.models.v1 import trainer_pb2_grpc
        from longtail.triggers.v1 import triggers_pb2_grpc
        from longtail.config import S3Settings, load
        from longtail.storage import ObjectStore

        self.labels = labels_pb2_grpc.LabelStoreServiceStub(grpc.insecure_channel(self.processes["label-store"].address))
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(grpc.insecure_channel(self.processes["trainer"].address))
        self.catalog = triggers_pb2_grpc.TriggerCatalogServiceStub(grpc.insecure_channel(self.processes["trigger-evaluator"].address))
        self.objects = ObjectStore(load(S3Settings), service="demo")
        self.objects.ensure_bucket()

    # ------------------------------------------------------------------ baseline + suites
    def publish_baseline(self) -> None:
        from fleet_sim.bootstrap import train_bootstrap_model
        from longtail import model_repo, topics
        from longtail.common.v1 import common_pb2 as C
        from longtail.kafka import Producer
        from longtail.models.v1 import trainer_pb2 as T

        t0 = time.perf_counter()
        self.model = train_bootstrap_model(seed=BOOTSTRAP_SEED, log=lambda m: self.say(f"[blue]bootstrap[/] {m}"))
        self.model.eval()
        self.say(f"[blue]baseline[/] bootstrap model ready in {time.perf_counter() - t0:.1f}s (trained on common cases only)")
        producer = Producer(os.environ["KAFKA_BOOTSTRAP_SERVERS"], "demo")
        for name in self.arms.values():
            pv = model_repo.publish(self.objects, self.model, name, 1)
            producer.produce(topics.MODELS_PUBLISHED, name, model_repo.published_event(pv, C.MODEL_ROLE_PRODUCTION, self.objects.bucket))
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 60
        for name in self.arms.values():
            while self.trainer.GetModel(T.GetModelRequest(model=C.ModelRef(name=name, version=1)), timeout=10).model.state != T.MODEL_STATE_PRODUCTION:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the trainer never saw {name} v1 as PRODUCTION")
                time.sleep(0.3)
        self.say(f"[blue]baseline[/] published {', '.join(f'{n} v1' for n in self.arms.values())} as PRODUCTION")

    def register_frames(self, frames, vehicle: str, trigger_id: str = "") -> list[str]:
        from longtail.labels.v1 import labels_pb2 as L
        from longtail.storage import SNAPSHOTS
        from trainer import data as data_mod

        ids = []
        for img, gt in zip(frames.images, frames.truths):
            put = self.objects.put_content(data_mod.png(img), SNAPSHOTS, ".png", "image/png")
            truth = {"snapshot_id": put.sha256, "vehicle_id": vehicle, "firing_frame_id": "f", "frames": [{"frame_id": "f", "objects": [o.to_dict() for o in gt]}]}
            self.objects.put_at(f"groundtruth/{put.sha256}.json", json.dumps(truth).encode(), "application/json")
            sample = L.Sample(sample_id=put.sha256, bucket=self.objects.bucket, object_key=put.key, content_type="image/png",
                              provenance=L.Provenance(vehicle_id=vehicle, frame_id=put.sha256[:12], trigger_id=trigger_id))
            self.labels.RegisterSample(L.RegisterSampleRequest(sample=sample), metadata=self.auth, timeout=10)
            if put.sha256 not in ids:
                ids.append(put.sha256)
        return ids

    def upsert_suites(self) -> None:
        import yaml

        from fleet_sim.bootstrap import occluded_only, sample_frames
        from fleet_sim.world import OTHER_SIGN, RED_ROUND_SIGN, STOP_SIGN, TRAFFIC_LIGHT, World, WorldConfig
        from longtail.labels.v1 import labels_pb2 as L

        n = self.config.suite_cases

        def big(cls):
            return lambda target, gt: any(o.cls == cls and o.box_px >= 12 and not o.truncated for o in gt)

        def no_stop(target, gt):
            return not any(o.cls == STOP_SIGN for o in gt)

        repo = {p.stem: yaml.safe_load(p.read_text()) for p in SUITE_DIR.glob("*.yaml")}
        specs = [
            # Detected at all (the repository's suite also requires the occlusion attribute, which a
            # model that never saw foliage cannot output: 0% for every baseline, no signal).
            ("stop_sign.occluded", "stop_sign", "any(d.cls == stop_sign and d.conf >= 0.5)",
             (World(occluded_only(), seed=10_779), {STOP_SIGN: 1.0}, (4.0, 12.0), big(STOP_SIGN))),
            ("stop_sign.regressions", "stop_sign", "any(d.cls == stop_sign and d.conf >= 0.5)",
             (World(WorldConfig().common_only(), seed=10_778), {STOP_SIGN: 1.0}, (4.0, 12.0), big(STOP_SIGN))),
            ("stop_sign.no-false-alarms", "stop_sign", repo["stop_sign.no-false-alarms"]["predicate"],
             (World(WorldConfig(), seed=10_780), {RED_ROUND_SIGN: 0.5, OTHER_SIGN: 0.3, TRAFFIC_LIGHT: 0.2}, (4.0, 20.0), no_stop)),
            ("traffic_light.regressions", "traffic_light", "any(d.cls == traffic_light and d.conf >= 0.5)",
             (World(WorldConfig().common_only(), seed=10_781), {TRAFFIC_LIGHT: 1.0}, (4.0, 14.0), big(TRAFFIC_LIGHT))),
        ]
        for i, (suite, task, predicate, (world, mix, distance, accept)) in enumerate(specs):
            frames = sample_frames(world, n, seed=50 + i, mix=mix, distance=distance, accept=accept, max_tries=50)
            ids = self.register_frames(frames, f"suite-{self.run_id}")
            text = yaml.safe_dump({"suite": suite, "task": task, "predicate": predicate,
                                   "description": f"{suite} (cases rendered by the demo {self.run_id})",
                                   "cases": [{"sample": s} for s in ids]}, sort_keys=False)
            self.labels.UpsertSuite(L.UpsertSuiteRequest(yaml=text), metadata=self.auth, timeout=30)
            self.result.suites[suite] = len(ids)
        self.say(f"[blue]suites[/] {', '.join(f'{s} ({c} cases)' for s, c in self.result.suites.items())}")

    # ------------------------------------------------------------------ trigger detector
    @property
    def seed_trigger(self) -> str:
        """Provenance of the detector's seed set: labels the triggered arm spent (and trains on)."""
        return f"seed-{self.run_id}"

    @property
    def detector_trigger(self) -> str:
        return f"detector-stop-{self.run_id}"

    def seed_detector(self) -> None:
        """The operator labels a small seed set (occluded stop signs and other frames) and the trainer
        fits a trigger detector on it; the gateway beams it to the cars with the triggers."""
        from fleet_sim.bootstrap import occluded_only, sample_frames
        from fleet_sim.world import OTHER_SIGN, RED_ROUND_SIGN, STOP_SIGN, TRAFFIC_LIGHT, World, WorldConfig

        n = self.config.seed_examples
        positives = sample_frames(World(occluded_only(), seed=20_011), n, seed=71, mix={STOP_SIGN: 1.0}, distance=(4.0, 20.0),
                                  accept=lambda target, gt: any(o.cls == STOP_SIGN and o.box_px >= 8 for o in gt), max_tries=50)
        # Negatives look like fleet frames (road, plain stop signs, look-alikes): a detector that only
        # saw signs close up fires on trees and red signs all over the fleet (measured: ~4x fewer
        # false fires with these, see docs/demo.md).
        negatives = sample_frames(World(WorldConfig().common_only(), seed=20_012), 2 * n, seed=72,
                                  mix={"road": 0.4, STOP_SIGN: 0.3, RED_ROUND_SIGN: 0.1, OTHER_SIGN: 0.1, TRAFFIC_LIGHT: 0.1}, distance=(4.0, 30.0))
        vehicle = f"seed-{self.run_id}"
        ids = self.register_frames(positives, vehicle, self.seed_trigger) + self.register_frames(negatives, vehicle, self.seed_trigger)
        self.label_queue()
        self.seed_labels = len(ids)
        self.detector_name = f"occluded_stop_{self.run_id}"
        if not self.train_detector(0, [self.seed_trigger], f"{len(ids)} labelled seed frames"):
            self.detector_name = ""
            self.result.notes.append(f"the trigger detector was not published ({self.result.detectors[-1]['gate']}): no detector trigger this run")

    def train_detector(self, iteration: int, trigger_ids: list[str], what: str) -> bool:
        """A detector run on the labelled samples of `trigger_ids`; True when published (beamed to the cars)."""
        from longtail.common.v1 import common_pb2 as C
        from longtail.labels.v1 import labels_pb2 as L
        from longtail.models.v1 import trainer_pb2 as T

        created = self.labels.CreateDataset(L.CreateDatasetRequest(name=f"demo-{self.run_id}-detector", tasks=["stop_sign"],
                                                                   filter=L.SampleFilter(trigger_ids=trigger_ids), split=L.SplitSpec(val_fraction=0.25),
                                                                   description=f"occluded stop sign detector, iteration {iteration}: {what}"),
                                            metadata=self.auth, timeout=120)
        ds = created.dataset
        if created.already_existed and self.result.detectors:
            self.say(f"[blue]detector[/] {self.detector_name}: no new labelled upload since {ds.name}@{ds.version}, not retrained")
            return False
        spec = T.RunSpec(kind=T.RUN_KIND_TRIGGER_DETECTOR, model_name=self.detector_name, detector_name=self.detector_name, tasks=["stop_sign"],
                         positive_predicate=OCCLUDED, seed=self.config.seed + iteration, epochs=16,
                         datasets=[C.DatasetRef(name=ds.name, version=ds.version)])
        run = self.wait_run(self.trainer.StartRun(T.StartRunRequest(spec=spec), metadata=self.auth, timeout=10).run.run_id, f"detector i{iteration}")
        accepted = run.status == T.RUN_STATUS_SUCCEEDED
        samples = ds.split_counts.train + ds.split_counts.val + ds.split_counts.test
        entry = {"name": self.detector_name, "iteration": iteration, "version": int(run.model.version) if accepted else 0, "samples": samples,
                 "dataset": f"{ds.name}@{ds.version}", "status": T.RunStatus.Name(run.status).removeprefix("RUN_STATUS_"),
                 "gate": "; ".join(run.gate_report.reasons) or run.error}
        self.result.detectors.append(entry)
        self.say(f"[blue]detector[/] {self.detector_name} v{run.model.version} from {what} ({samples} samples): "
                 f"{entry['status'].lower()} ({entry['gate']})")
        return accepted

    def retrain_detector(self, iteration: int) -> None:
        """The detector's own labelled uploads (mostly its false alarms) join the seed set: the next
        version, beamed to the cars under the same name, fires less on what it confused."""
        stats = self.triggers.get(self.detector_trigger)
        if not self.detector_name or stats is None or stats.uploads == 0:
            return
        self.train_detector(iteration, [self.seed_trigger, self.detector_trigger],
                            f"the seed set and its {stats.uploads} labelled uploads ({stats.true_positive} true)")

    # ------------------------------------------------------------------ triggers
    def trigger_specs(self) -> list[tuple[str, str, dict]]:
        """(trigger id, arm, spec fields). Per-car limits spread the label budget over the cars."""
        c = self.config
        per_car = max(1, math.ceil(c.budget / c.cars))
        share = max(1, math.ceil(per_car * 0.3))
        shares = 3 if self.detector_name else 2  # detector, map, unsure (flicker gets the rest)
        specs = []
        if self.detector_name:
            # The beamed-down detector: its score for the frame (the newest version under its bare name).
            specs.append((self.detector_trigger, "triggered",
                          {"expression": f'score("{self.detector_name}") > 0.7', "min_interval_s": 1.0, "per_car": share}))
        return specs + [
            # Map-vision disagreement, fleet-side: the map has a stop sign the car should see and
            # the car's model does not (occluded signs look like that; so do stale map features).
            (f"map-stop-{self.run_id}", "triggered",
             {"expression": "map_disagrees(stop_sign, kind=missing)", "fleet": True, "min_interval_s": 2.0, "per_car": share}),
            # Uncertainty: a stop sign the shadow model sees, but without confidence (occluded
            # signs look like that to a model that never saw foliage).
            (f"unsure-stop-{self.run_id}", "triggered",
             {"expression": "any(d.cls == stop_sign and d.conf < 0.6)", "min_interval_s": 1.0, "per_car": share}),
            # Flicker: a stop sign that comes and goes between frames (the model cannot make up its mind).
            (f"flicker-stop-{self.run_id}", "triggered",
             {"expression": "any(d.cls == stop_sign and d.conf >= 0.25) and not sustained(any(d.cls == stop_sign and d.conf >= 0.25), frames=3)",
              "min_interval_s": 2.0, "per_car": max(1, per_car - shares * share)}),
            # Random sampling baseline: content-blind periodic sampling of fleet frames. Twice the
            # budget: the random arm takes the earliest, the uncertainty arm the most uncertain half.
            (f"random-{self.run_id}", "random",
             {"expression": "true", "every_frame": True, "min_interval_s": max(0.5, c.duration_s / (2 * per_car) * 0.95), "per_car": 2 * per_car}),
        ]

    def create_triggers(self) -> None:
        from google.protobuf import duration_pb2

        from longtail.triggers.v1 import triggers_pb2 as S

        for trigger_id, arm, f in self.trigger_specs():
            spec = S.TriggerSpec(name=trigger_id, expression=f["expression"], site=S.TRIGGER_SITE_FLEET if f.get("fleet") else S.TRIGGER_SITE_EDGE, task="stop_sign",
                                 firing_mode=S.FIRING_MODE_EVERY_FRAME if f.get("every_frame") else S.FIRING_MODE_RISING_EDGE,
                                 min_interval=duration_pb2.Duration(seconds=int(f["min_interval_s"]), nanos=int((f["min_interval_s"] % 1) * 1e9)),
                                 upload_budget=100_000, max_uploads_per_car_hour=f["per_car"],
                                 description=f"demo {self.run_id}, {arm} arm")
            check = self.catalog.ValidateTrigger(S.ValidateTriggerRequest(expression=spec.expression, spec=spec), metadata=self.auth, timeout=10)
            if not check.ok:
                raise RuntimeError(f"trigger {trigger_id} does not validate: {check.errors}")
            self.catalog.CreateTrigger(S.CreateTriggerRequest(trigger_id=trigger_id, spec=spec), metadata=self.auth, timeout=10)
            self.triggers[trigger_id] = TriggerStats(trigger_id, arm, f["expression"], site="fleet" if f.get("fleet") else "edge")
        self.result.triggers = list(self.triggers.values())
        self.say(f"[magenta]operator[/] created triggers {', '.join(self.triggers)}")

    def backtest_and_activate(self, since_ms: int) -> None:
        from google.protobuf import timestamp_pb2

        from longtail.common.v1 import common_pb2 as C
        from longtail.triggers.v1 import triggers_pb2 as S

        start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
        start.FromMilliseconds(since_ms)
        end.GetCurrentTime()
        for trigger_id, stats in self.triggers.items():
            try:
                bt = self.catalog.BacktestTrigger(S.BacktestTriggerRequest(trigger=S.TriggerRef(trigger_id=trigger_id), time_range=C.TimeRange(since=start, until=end)),
                                                  metadata=self.auth, timeout=120)
                stats.backtest_fires, stats.backtest_frames = int(bt.fires), int(bt.frames_evaluated)
                self.say(f"[magenta]operator[/] backtest {trigger_id}: {bt.fires} fires in {bt.frames_evaluated} frames "
                         f"({bt.fires_per_car_hour:.0f}/car-hour)")
            except grpc.RpcError as exc:
                self.result.notes.append(f"backtest of {trigger_id} failed: {exc.code().name} {exc.details()}")
                self.say(f"[red]backtest[/] {trigger_id}: {exc.code().name} {exc.details()}")
            self.catalog.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=self.auth, timeout=10)
        self.say(f"[magenta]operator[/] activated {len(self.triggers)} triggers")

    def retire_triggers(self) -> None:
        from longtail.triggers.v1 import triggers_pb2 as S

        for trigger_id in self.triggers:
            try:
                self.catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=trigger_id, reason="demo finished"), metadata=self.auth, timeout=10)
            except grpc.RpcError:
                pass

    # ------------------------------------------------------------------ fleet
    def drive(self, iteration: int, duration_s: float, label: str):
        import torch

        from fleet_sim.fleet import SimConfig, SimulatedFleet
        from fleet_sim.world import World, WorldConfig

        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        # Cars start per run (run id) and drive (its number): a repeated run must not upload byte-identical frames
        # (content-addressed: the gateway would store nothing new and no sample would appear).
        # Fleet-side fires come back as upload requests after the (faster than real time) drive moved
        # on: the cars keep the whole drive and wait a little for late requests.
        sim = SimConfig(cars=self.config.cars, duration_s=duration_s, seed=(int(self.run_id, 16) % 100_000) * 1000 + self.config.seed * 100 + len(self.result.fleet),
                        vehicle_prefix=f"{self.run_id}-{label}", ring_frames=min(300, int(duration_s * 10) + 1), request_grace_s=3.0)
        world = World(WorldConfig(), seed=self.config.seed)
        # The cars start with the bootstrap model and install what the gateway beams down: the
        # triggered arm's PRODUCTION (GATEWAY_FLEET_MODEL), its shadow CANDIDATE and trigger detectors.
        fleet = SimulatedFleet(sim, world, self.model, store=self.objects, gateway_address=self.processes["gateway"].address, token_secret=self.fleet_secret,
                               truth_tags={"occluded_stop_sign": lambda gt: any(o.cls == "stop_sign" and o.attributes.get("occlusion") == "foliage" for o in gt)})
        t0 = time.perf_counter()
        last = [0.0]

        def progress(report, fraction):
            if time.perf_counter() - last[0] > 5 or fraction >= 1:
                last[0] = time.perf_counter()
                self.say(f"[cyan]fleet[/] {label}: {fraction:4.0%} {report.frames:,} frames, {sum(report.fires.values())} fires, {report.uploads} uploads")

        report = asyncio.run(fleet.run(progress))
        shadow = f", shadow mode: {report.shadow_frames:,} frames compared, {report.shadow_disagreements} disagreements" if report.shadow_frames else ""
        self.say(f"[cyan]fleet[/] {label}: {report.frames:,} frames ({report.frames_acked:,} acked) in {time.perf_counter() - t0:.0f}s on "
                 f"{', '.join(sorted(report.models))}, {report.uploads} uploads, {report.upload_errors} upload errors{shadow}")
        self.result.fleet.append({"iteration": iteration, "label": label, "frames": report.frames, "acked": report.frames_acked,
                                  "fires": dict(report.fires), "uploads": report.uploads, "upload_errors": report.upload_errors,
                                  "models": dict(report.models), "shadow_frames": report.shadow_frames,
                                  "shadow_disagreements": report.shadow_disagreements, "occluded_stop_frames": report.truth_frames.get("occluded_stop_sign", 0),
                                  "wall_s": round(report.wall_seconds, 1)})
        for tid, n in report.fires.items():
            if tid in self.triggers:
                self.triggers[tid].fires += n
        self.pending_uploads += sum(n for tid, n in report.uploads_by_trigger.items() if tid in self.triggers)
        if report.uploads_existing:
            self.result.notes.append(f"{label}: {report.uploads_existing} uploads were already stored (identical content)")
        return report

    def samples_of(self, trigger_ids: list[str]) -> list:
        from longtail.labels.v1 import labels_pb2 as L

        out, token = [], ""
        while True:
            page = self.labels.ListSamples(L.ListSamplesRequest(filter=L.SampleFilter(trigger_ids=trigger_ids), page_size=500, page_token=token), timeout=30)
            out.extend(page.samples)
            token = page.next_page_token
            if not token:
                return out

    def wait_for_samples(self, expected: int, timeout: float = 120.0) -> list:
        """Until the label store registered the uploads (or, once new ones arrived, nothing changed for
        15 s; a fresh broker can take a while to give a new consumer group its partitions)."""
        deadline, last, stable = time.monotonic() + timeout, -1, 0
        while True:
            samples = self.samples_of(list(self.triggers))
            stable = stable + 1 if len(samples) == last else 0
            last = len(samples)
            if len(samples) >= expected or (stable >= 30 and len(samples) > len(self.counted)) or time.monotonic() > deadline:
                return samples
            time.sleep(0.5)

    # ------------------------------------------------------------------ labelling
    def ground_truth(self, sample_id: str) -> dict | None:
        if sample_id not in self.truth:
            try:
                self.truth[sample_id] = json.loads(self.objects.get(f"groundtruth/{sample_id}.json"))
            except Exception:  # noqa: BLE001 - not uploaded by a simulator
                return None
        return self.truth[sample_id]

    def label_queue(self, task_name: str = "stop_sign") -> int:
        """Simulated labellers work the queue dry (label_store.labellers.annotate, error rate 0.02)."""
        from label_store.labellers import annotate
        from longtail.labels.v1 import labels_pb2 as L

        task = self.labels.GetTask(L.GetTaskRequest(name=task_name), timeout=10).task
        rng = random.Random(self.config.seed)
        done, skipped = 0, set()
        while True:
            lease = self.labels.GetNextTask(L.GetNextTaskRequest(task=task_name, labeller_id="demo-simulated-labeller"), timeout=10).lease
            if not lease.lease_id:
                break
            sid = lease.sample.sample_id
            truth = self.ground_truth(sid)
            annotation = annotate(task, truth, ERROR_RATE, rng) if truth is not None else None
            if annotation is None:
                # No ground truth (not a simulator upload): keep the lease so the queue hands out the
                # next sample; once a skipped one comes back (its lease expired) the queue went round.
                if sid in skipped:
                    break
                skipped.add(sid)
                continue
            label = L.Label(sample_id=sid, task=task_name, labeller_kind=L.LABELLER_KIND_SIMULATED, annotation=annotation)
            self.labels.SubmitLabel(L.SubmitLabelRequest(lease_id=lease.lease_id, idempotency_key=lease.lease_id, label=label), timeout=10)
            done += 1
        self.result.labels_total += done
        return done

    # ------------------------------------------------------------------ training
    def most_uncertain(self, pool: list, n: int) -> list[str]:
        """Plain uncertainty sampling: the `n` pool samples whose stop-sign output has the highest
        entropy under the uncertainty arm's current PRODUCTION model."""
        from longtail import model as model_mod
        from longtail.common.v1 import common_pb2 as C
        from longtail.models.v1 import trainer_pb2 as T
        from trainer import data as data_mod

        if not pool or n <= 0:
            return []
        mv = self.trainer.GetModel(T.GetModelRequest(model=C.ModelRef(name=self.arms["uncertainty"])), timeout=10).model
        model = model_mod.from_bytes(self.objects.get(mv.weights_key))
        images = data_mod.fetch_images(lambda bucket, key: self.objects.get(key),
                                       [data_mod.Example(s.sample_id, "", s.bucket, s.object_key, s.content_type) for s in pool])

        def entropy(prediction: dict) -> float:
            p = np.array([v for v in prediction["stop_sign"]["class_scores"].values() if v > 0.0])
            return float(-(p * np.log(p)).sum())

        scores = [entropy(p) for p in model.predict(images)]
        ranked = sorted(range(len(pool)), key=lambda i: -scores[i])
        return [pool[i].sample_id for i in ranked[:n]]

    def dataset(self, arm: str, iteration: int, until_ns: int | None = None, sample_ids: list[str] | None = None):
        from google.protobuf import timestamp_pb2

        from longtail.common.v1 import common_pb2 as C
        from longtail.labels.v1 import labels_pb2 as L

        ids = [t for t, s in self.triggers.items() if s.arm == arm] + ([self.seed_trigger] if arm == "triggered" and self.seed_labels else [])
        name = f"demo-{self.run_id}-{arm}"
        # An empty `sample_ids` means "any sample": an empty pick names a sample that cannot exist.
        flt = L.SampleFilter(trigger_ids=ids) if sample_ids is None else L.SampleFilter(sample_ids=sample_ids or ["(none)"])
        if until_ns is not None:
            since, until = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
            since.FromNanoseconds(1)
            until.FromNanoseconds(until_ns)
            flt.captured.CopyFrom(C.TimeRange(since=since, until=until))
        ds = self.labels.CreateDataset(L.CreateDatasetRequest(name=name, tasks=["stop_sign"], filter=flt, split=L.SplitSpec(val_fraction=0.1, test_fraction=0.0),
                                                          description=f"demo {self.run_id}: {arm} arm, iteration {iteration}"),
                                       metadata=self.auth, timeout=120).dataset
        return ds

    def start_run(self, arm: str, iteration: int, dataset) -> str:
        from google.protobuf import struct_pb2

        from longtail.common.v1 import common_pb2 as C
        from longtail.models.v1 import trainer_pb2 as T

        hp = struct_pb2.Struct()
        # Both arms rehearse the common case with the same synthetic frames (no labels spent).
        hp.update({"lr": 0.001, "replay_samples": self.config.replay_samples})
        # The triggered arm's accepted versions become CANDIDATEs (shadow mode first), the baselines' PRODUCTION.
        spec = T.RunSpec(model_name=self.arms[arm], promote=arm != "triggered", seed=self.config.seed + iteration, epochs=self.config.epochs, hyperparameters=hp,
                         datasets=[C.DatasetRef(name=dataset.name, version=dataset.version)])
        return self.trainer.StartRun(T.StartRunRequest(spec=spec), metadata=self.auth, timeout=10).run.run_id

    def wait_run(self, run_id: str, label: str, timeout: float = 1200.0):
        from longtail.models.v1 import trainer_pb2 as T

        deadline, shown = time.monotonic() + timeout, -1.0
        while True:
            run = self.trainer.GetRun(T.GetRunRequest(run_id=run_id), timeout=10).run
            if run.status in (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED):
                return run
            if run.progress - shown >= 0.2:
                shown = run.progress
                self.say(f"[blue]trainer[/] {label}: {T.RunPhase.Name(run.phase).removeprefix('RUN_PHASE_').lower()} {run.progress:.0%}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} ({label}) did not finish in {timeout:.0f}s")
            time.sleep(1.0)

    # ------------------------------------------------------------------ the loop
    def is_occluded_stop(self, sample_id: str) -> bool:
        from label_store.labellers import firing_objects

        truth = self.ground_truth(sample_id)
        return bool(truth) and any(o.get("cls") == "stop_sign" and o.get("attributes", {}).get("occlusion") == "foliage" for o in firing_objects(truth))

    def collect_samples(self) -> list:
        """Every sample the drives so far uploaded (waiting for the label store to register them), accounted per trigger."""
        samples = self.wait_for_samples(len(self.counted) + self.pending_uploads)
        self.account(samples)
        self.pending_uploads = 0
        from longtail.triggers.v1 import triggers_pb2 as S

        for stats in self.triggers.values():
            if stats.site == "fleet":  # fired on the server: the evaluator's yield ledger counts them
                yields = self.catalog.GetYield(S.GetYieldRequest(trigger_id=stats.trigger_id), timeout=30).yields
                stats.fires = sum(int(y.fired) for y in yields)
        return samples

    def account(self, samples) -> None:
        for s in samples:
            if s.sample_id in self.counted or s.provenance.trigger_id not in self.triggers:
                continue
            self.counted.add(s.sample_id)
            stats = self.triggers[s.provenance.trigger_id]
            stats.uploads += 1
            stats.true_positive += self.is_occluded_stop(s.sample_id)

    def iterate(self, iteration: int) -> None:
        from longtail.models.v1 import trainer_pb2 as T

        c = self.config
        self.drive(iteration, c.duration_s, f"i{iteration}")
        samples = self.collect_samples()
        self.say(f"[green]label-store[/] {len(samples)} fleet samples registered so far")
        labelled = self.label_queue()
        self.say(f"[green]labellers[/] {labelled} labels given (simulated, error rate {ERROR_RATE})")
        self.retrain_detector(iteration)

        triggered = self.dataset("triggered", iteration)
        n_trig = triggered.split_counts.train + triggered.split_counts.val + triggered.split_counts.test  # the seed set included
        # The random arm gets at most the triggered arm's label count: its earliest samples, cut by
        # capture time (cars sample in lockstep, so the cut may round down to fewer).
        stamps = sorted(s.provenance.captured_at.ToNanoseconds() for s in samples
                        if s.provenance.trigger_id in self.triggers and self.triggers[s.provenance.trigger_id].arm == "random")
        k = min(n_trig, len(stamps))
        while 0 < k < len(stamps) and stamps[k - 1] == stamps[k]:
            k -= 1
        until = None
        if k < len(stamps):
            until = (stamps[k - 1] + stamps[k]) // 2 if k > 0 else stamps[0] - 1
        rnd = self.dataset("random", iteration, until_ns=until)
        n_rnd = rnd.split_counts.train + rnd.split_counts.val + rnd.split_counts.test
        pool = [s for s in samples if s.provenance.trigger_id in self.triggers and self.triggers[s.provenance.trigger_id].arm == "random"]
        unc = self.dataset("uncertainty", iteration, sample_ids=self.most_uncertain(pool, n_trig))
        n_unc = unc.split_counts.train + unc.split_counts.val + unc.split_counts.test
        self.say(f"[green]datasets[/] triggered v{triggered.version}: {n_trig} labels ({self.seed_labels} of them the detector's seed set); "
                 f"random v{rnd.version}: {n_rnd}; uncertainty v{unc.version}: {n_unc} (the most uncertain of {len(pool)} random fleet frames)")

        runs = {}
        for arm, ds, n in (("triggered", triggered, n_trig), ("random", rnd, n_rnd), ("uncertainty", unc, n_unc)):
            if ds.split_counts.train == 0:
                # The trainer would fall back to the simulator's generator: not a fleet-learning result.
                previous = [i for i in self.result.iterations if i.arm == arm]
                rates = previous[-1].pass_rates if previous else dict(self.result.baseline)
                self.result.iterations.append(ArmIteration(iteration, arm, n, f"{ds.name}@{ds.version}", status="SKIPPED",
                                                           reasons=["no training sample in the dataset: not trained"], pass_rates=dict(rates)))
                self.result.labels_spent[arm] = n
                self.say(f"[yellow]trainer[/] {arm} i{iteration}: no training sample yet, not trained")
                continue
            runs[arm] = (self.start_run(arm, iteration, ds), ds, n)
        for arm, (run_id, ds, n) in runs.items():
            run = self.wait_run(run_id, f"{arm} i{iteration}")
            gate = run.gate_report
            before = {s.suite: s.before_pass_rate for s in gate.suites if s.suite in self.result.suites}
            after = {s.suite: s.after_pass_rate for s in gate.suites if s.suite in self.result.suites}
            accepted = run.status == T.RUN_STATUS_SUCCEEDED and gate.accepted
            if iteration == 1 and not self.result.baseline and before:
                self.result.baseline = before
                self.say("[blue]baseline[/] suite pass rates (bootstrap, from the gate): " + ", ".join(f"{k} {v:.0%}" for k, v in sorted(before.items())))
            it = ArmIteration(iteration, arm, n, f"{ds.name}@{ds.version}", run_id, T.RunStatus.Name(run.status).removeprefix("RUN_STATUS_"), accepted,
                              run.model.version, list(gate.reasons) + ([run.error] if run.error else []),
                              after if accepted else before, after, list(run.datasets_used))
            self.result.iterations.append(it)
            self.result.labels_spent[arm] = n
            verdict = ("[green]accepted -> CANDIDATE[/]" if arm == "triggered" else "[green]accepted -> PRODUCTION[/]") if accepted \
                else f"[red]{it.status.lower()}[/] ({'; '.join(it.reasons)[:200]})"
            self.say(f"[blue]gate[/] {arm} i{iteration} v{run.model.version}: {verdict}; " + ", ".join(f"{k} {after.get(k, 0):.0%}" for k in sorted(after)))
            if accepted and arm == "triggered":
                self.shadow_and_promote(iteration, it)

    def shadow_and_promote(self, iteration: int, it: ArmIteration) -> None:
        """The fleet runs the gate-accepted CANDIDATE beside PRODUCTION for a short drive; the cars'
        reports, summed up by CompareModels, go into the promotion decision and the report."""
        from google.protobuf import timestamp_pb2

        from longtail.common.v1 import common_pb2 as C
        from longtail.models.v1 import trainer_pb2 as T

        name = self.arms["triggered"]
        since = timestamp_pb2.Timestamp()
        since.GetCurrentTime()
        report = self.drive(iteration, min(self.config.shadow_s, self.config.duration_s), f"i{iteration}-shadow")
        request = T.CompareModelsRequest(production=C.ModelRef(name=name), candidate=C.ModelRef(name=name, version=it.version))
        request.time_range.since.CopyFrom(since)
        deadline = time.monotonic() + 30
        while True:  # the gateway produces the cars' last reports asynchronously
            r = self.trainer.CompareModels(request, timeout=120)
            if r.frames_compared >= report.shadow_frames or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        it.shadow = {"frames_compared": int(r.frames_compared), "frames_disagreeing": int(r.frames_disagreeing), "cars": int(r.distinct_vehicles),
                     "disagreement_rate": round(r.disagreement_rate, 4), "by_kind": {k.removeprefix("SHADOW_DIFFERENCE_KIND_"): int(v) for k, v in r.by_kind.items()}}
        evidence = f"shadow mode on {r.distinct_vehicles} cars: {r.frames_disagreeing}/{r.frames_compared} frames disagree ({r.disagreement_rate:.1%})"
        self.say(f"[magenta]operator[/] {name} v{it.version}: {evidence}; promoting")
        self.trainer.PromoteModel(T.PromoteModelRequest(model=C.ModelRef(name=name, version=it.version), role=C.MODEL_ROLE_PRODUCTION,
                                                        reason=f"demo {self.run_id}: gate accepted; {evidence}"), metadata=self.auth, timeout=30)
        self.say(f"[green]PRODUCTION[/] {name} v{it.version}: the gateway beams it to the fleet")

    def base_rate(self) -> None:
        """The share of fleet frames that hold an occluded stop sign (simulator ground truth of every
        frame the cars rendered), and the same among the random arm's uploads (a sample of it)."""
        frames = sum(f["frames"] for f in self.result.fleet)
        self.result.base_rate = sum(f["occluded_stop_frames"] for f in self.result.fleet) / frames if frames else 0.0
        rnd = [t for t in self.triggers.values() if t.arm == "random"]
        uploads = sum(t.uploads for t in rnd)
        self.result.base_rate_random_uploads = sum(t.true_positive for t in rnd) / uploads if uploads else 0.0

    def run(self) -> DemoResult:
        started = time.perf_counter()
        self.infra_up()
        try:
            self.start_services()
            self.stubs()
            self.publish_baseline()
            if self.config.triton:  # inference serves once a PRODUCTION version exists
                self._start("inference")
            self.upsert_suites()
            self.seed_detector()
            self.create_triggers()
            # Recorded telemetry for the backtest: a short drive with no trigger active.
            since_ms = int(time.time() * 1000) - 1000
            self.drive(0, min(10.0, self.config.duration_s), "backtest-drive")
            time.sleep(1.0)
            self.backtest_and_activate(since_ms)
            time.sleep(1.5)  # the gateway's catalog view follows the topic
            for iteration in range(1, self.config.iterations + 1):
                self.say(f"[bold]iteration {iteration}/{self.config.iterations}[/]")
                self.iterate(iteration)
            self.collect_samples()  # uploads of the last shadow drive count for the triggers too
            self.base_rate()
            for it in self.result.iterations:  # skipped before the first gate report gave the baseline
                if it.status == "SKIPPED" and not it.pass_rates:
                    it.pass_rates = dict(self.result.baseline)
        finally:
            try:
                if hasattr(self, "catalog"):
                    self.retire_triggers()
            finally:
                self.result.wall_seconds = time.perf_counter() - started
                if not self.config.keep_running:
                    self.stop()
        return self.result


def run(config: DemoConfig, say: Callable[[str], None] = print) -> tuple[DemoResult, Path, Demo]:
    """Run the loop and write the report. With keep_running the services are still up on return
    (they die with this process: PR_SET_PDEATHSIG) -- call `demo.stop()` when done."""
    from demo import report

    demo = Demo(config, say)
    result = demo.run()
    path = report.write(result, config.out)
    say(f"[bold green]report[/] {path}")
    return result, path, demo
