"""Training runs: queue, execution (prepare -> train -> evaluate -> gate -> publish), bookkeeping.

Runs execute one at a time on a worker thread (CPU training uses every core it is given; two
runs at once would only make both slower and break reproducibility of timing-dependent code).
`Trainer.submit` is idempotent on run_id. Every phase change is persisted (registry.save_run), so
`GetRun` after a restart still shows finished runs; a run that was RUNNING when the process died
is queued again (its inputs are immutable: dataset versions, a base model version, a seed) and
keeps the model version it had reserved, so a run killed after publishing publishes nothing twice
(`model_repo.publish` returns the existing version for identical weights); QUEUED ones are queued
again.
"""

from __future__ import annotations

import builtins
import queue
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import grpc
import numpy as np
from google.protobuf import json_format
from prometheus_client import Gauge

from longtail import model_repo, topics
from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.log import get_logger
from longtail.model import fitting, torchscript
from longtail.model.network import MultiTaskNet
from longtail.models.v1 import events_pb2 as E
from longtail.models.v1 import trainer_pb2 as T
from longtail.registry import TRAINER
from longtail.storage import ObjectStore
from longtail.tasks import DeclaredTask

from trainer import backends as backends_mod
from trainer import data as data_mod
from trainer import detector as det
from trainer import gate, hyperparameters, jobs, training
from trainer.labels import LabelStoreClient
from trainer.registry import Registry

log = get_logger(__name__)
SERVICE = TRAINER.name
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# One series per declared task and metric: the model-quality dashboard repeats its task panel over
# the `task` label, so a task declared in tasks.yaml gets its panel with no dashboard change.
LEARNED_TASKS_KEY = "trainer/learned-tasks.json"  # tasks declared after start (`longtail tasks apply`), kept across restarts
TASK_METRIC = Gauge("longtail_trainer_task_metric", "Metric of a trained model version per declared task: val/<name>, test/<name> on the dataset splits, suite/<suite> pass rates", ["service", "model", "version", "task", "metric"])
TERMINAL = (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED)


class RunError(Exception):
    """A run that cannot proceed; the message becomes Run.error."""


def failure_message(exc: Exception) -> str:
    """Run.error for a failed run: what a person can act on. A gRPC error (the trainer calls only
    the label store) reads as its status and details, not as the call object's repr."""
    if isinstance(exc, RunError | ValueError):
        return str(exc)
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        return f"the label store answered {exc.code().name}: {exc.details()}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Settings:
    threads: int = 2
    default_epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    fallback_samples: int = 800
    detector_min_auc: float = 0.8
    gate_shift_px: int = 1  # the gate's stability check moves case images by this much (0: every baseline pass counts)
    backend: str = "local"  # where multitask runs train when the run does not say (trainer.backends)


def shifted(images: dict[str, np.ndarray], px: int) -> list[dict[str, np.ndarray]]:
    """The case images moved by `px` pixels up, down, left and right (HWC; none when px is 0)."""
    if px <= 0:
        return []
    return [{k: np.roll(v, px * sign, axis=axis) for k, v in images.items()} for axis in (0, 1) for sign in (1, -1)]


class Trainer:
    def __init__(
        self,
        store: ObjectStore,
        registry: Registry,
        declared: Sequence[DeclaredTask],
        labels: LabelStoreClient | None,
        publish_event: Callable[[topics.Topic, str, object], None],
        settings: Settings | None = None,
        default_model: str = "multitask",
        backends: dict[str, backends_mod.Backend] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.declared = list(declared)
        self.labels = labels
        self.publish_event = publish_event
        self.settings = settings or Settings()
        self.default_model = default_model
        self.backends = backends or {"local": backends_mod.LocalBackend()}
        if self.settings.backend not in self.backends:
            raise ValueError(f"TRAINER_BACKEND={self.settings.backend}: not configured (configured: {', '.join(self.backends)})")
        self.runs: dict[str, T.Run] = {}
        self._lock = threading.RLock()
        self._queue: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="trainer-runs", daemon=True)
        self.current: str = ""
        self._file_tasks = {d.name for d in self.declared}  # from tasks.yaml; the others were learned at run time

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, recover: bool = True) -> None:
        self._load_learned_tasks()
        if recover:
            for run in sorted(self.registry.load_runs(), key=lambda r: r.created_at.ToNanoseconds()):
                if run.status == T.RUN_STATUS_RUNNING:
                    run.status, run.phase, run.progress = T.RUN_STATUS_QUEUED, T.RUN_PHASE_UNSPECIFIED, 0.0
                    run.metrics["run/restarts"] = run.metrics.get("run/restarts", 0.0) + 1
                    if run.model.version:
                        self.registry.reserve(run.model.name, run.model.version)
                    self.registry.save_run(run)
                    log.warning("run interrupted by a trainer restart: queued again", run_id=run.run_id, restarts=int(run.metrics["run/restarts"]))
                self.runs[run.run_id] = run
                if run.status == T.RUN_STATUS_QUEUED:
                    self._queue.put(run.run_id)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def learn_tasks(self, names: Sequence[str]) -> set[str]:
        """Tasks declared while the system runs (`longtail tasks apply` puts them in the label store)
        join the network the first time a run names them, and every later run trains their head
        (appended after tasks.yaml's: the output layout of the other heads does not move). Returns
        the names the label store does not know either."""
        with self._lock:
            known = {d.name for d in self.declared}
            missing = [n for n in dict.fromkeys(names) if n not in known]
            if not missing:
                return set()
            found = {n: self.labels.task(n) for n in missing} if self.labels is not None else {}
            learned = [DeclaredTask(tasks_mod.TaskSpec.from_proto(t), t.description) for t in found.values() if t is not None]
            if learned:
                self.declared += learned
                self._save_learned_tasks()
                log.info("tasks learned from the label store", tasks=[d.name for d in learned])
            return {n for n in missing if found.get(n) is None}

    def _save_learned_tasks(self) -> None:
        import json

        learned = [{"spec": d.spec.to_dict(), "description": d.description} for d in self.declared if d.name not in self._file_tasks]
        self.store.put_at(LEARNED_TASKS_KEY, json.dumps(learned).encode(), "application/json")

    def _load_learned_tasks(self) -> None:
        import json

        self._file_tasks = {d.name for d in self.declared}
        if not self.store.exists(LEARNED_TASKS_KEY):
            return
        dropped = []
        for item in json.loads(self.store.get(LEARNED_TASKS_KEY)):
            name = item["spec"]["name"]
            if name in self._file_tasks:
                continue
            if self.labels is not None and self._undeclared(name):
                dropped.append(name)  # no longer declared (or another label store's, on a shared bucket)
                continue
            self.declared.append(DeclaredTask(tasks_mod.TaskSpec.from_dict(item["spec"]), item.get("description", "")))
        if dropped:
            log.info("learned tasks the label store does not declare are dropped", tasks=dropped)
            self._save_learned_tasks()

    def _undeclared(self, name: str) -> bool:
        assert self.labels is not None  # asked only with a label store
        try:
            return self.labels.task(name) is None
        except Exception as exc:  # noqa: BLE001 - the label store unreachable: keep the head rather than drop it
            log.warning("cannot check a learned task with the label store; kept", task=name, error=repr(exc))
            return False

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- API -------------------------------------------------------------------------------------
    def submit(self, spec: T.RunSpec, run_id: str = "", triggered_by: str = "api") -> tuple[T.Run, bool]:
        if run_id and not RUN_ID.fullmatch(run_id):
            raise ValueError(f"run_id: {run_id[:80]!r} must match {RUN_ID.pattern} (it names the run's files)")
        gate.check_waivers(spec.waivers)
        hyperparameters.check(spec, set(spec.tasks) or {d.name for d in self.declared})
        backend = str(hyperparameters.get(spec, "backend", self.settings.backend))
        if backend not in self.backends:
            raise ValueError(f"spec.hyperparameters.backend: {backend} is not configured on this trainer (configured: {', '.join(self.backends)}; the kubernetes backend needs TRAINER_BACKEND=kubernetes, docs/trainer.md)")
        with self._lock:
            if run_id and run_id in self.runs:
                return self._copy(self.runs[run_id]), True
            run = T.Run(run_id=run_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}", status=T.RUN_STATUS_QUEUED, phase=T.RUN_PHASE_UNSPECIFIED, triggered_by=triggered_by)
            run.spec.CopyFrom(spec)
            if not run.spec.model_name:
                run.spec.model_name = spec.detector_name if spec.kind == T.RUN_KIND_TRIGGER_DETECTOR else self.default_model
            if not run.spec.kind:
                run.spec.kind = T.RUN_KIND_MULTITASK
            if run.spec.kind == T.RUN_KIND_TRIGGER_DETECTOR:
                if not spec.detector_name:
                    raise ValueError("spec.detector_name: required for a TRIGGER_DETECTOR run")
                det.spec(spec.detector_name)  # validates the name
                model_repo.check_name(run.spec.model_name)
                if not spec.positive_predicate.strip():
                    raise ValueError("spec.positive_predicate: required for a TRIGGER_DETECTOR run")
            else:
                model_repo.check_name(run.spec.model_name)
                unknown = self.learn_tasks(spec.tasks)
                if unknown:
                    raise ValueError(f"spec.tasks: not declared in tasks.yaml nor in the label store: {', '.join(sorted(unknown))}")
            run.created_at.GetCurrentTime()
            self.runs[run.run_id] = run
            self.registry.save_run(run)
            self._queue.put(run.run_id)
            return self._copy(run), False

    @staticmethod
    def _copy(run: T.Run) -> T.Run:
        copy = T.Run()
        copy.CopyFrom(run)
        return copy

    def get(self, run_id: str) -> T.Run | None:
        with self._lock:
            run = self.runs.get(run_id)
            return None if run is None else self._copy(run)

    def list(self, statuses: Sequence[int] = ()) -> list[T.Run]:
        with self._lock:
            runs = [self._copy(r) for r in self.runs.values()]
        runs = [r for r in runs if not statuses or r.status in statuses]
        return sorted(runs, key=lambda r: (r.created_at.ToNanoseconds(), r.run_id), reverse=True)

    def busy_with(self, predicate: Callable[[T.Run], bool]) -> bool:
        with self._lock:
            return any(r.status in (T.RUN_STATUS_QUEUED, T.RUN_STATUS_RUNNING) and predicate(r) for r in self.runs.values())

    def wait(self, run_id: str, timeout: float = 600.0) -> T.Run:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(run_id)
            if run is not None and run.status in TERMINAL:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} not finished after {timeout}s")
            time.sleep(0.1)

    # -- execution -------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                run_id = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            self.current = run_id
            try:
                self.execute(run_id)
            finally:
                self.current = ""

    def _update(self, run_id: str, persist: bool = False, **fields) -> None:
        with self._lock:
            run = self.runs[run_id]
            for k, v in fields.items():
                if k == "metrics":
                    run.metrics.update(v)
                elif k == "gate_report":
                    run.gate_report.CopyFrom(v)
                elif k == "model":
                    run.model.CopyFrom(v)
                elif k in ("fresh_heads", "datasets_used"):
                    getattr(run, k)[:] = list(v)
                else:
                    setattr(run, k, v)
            snapshot = T.Run()
            snapshot.CopyFrom(run)
        if persist:
            try:
                self.registry.save_run(snapshot)
            except Exception as exc:  # bookkeeping must not kill a run; the next phase retries
                log.warning("could not persist run", run_id=run_id, error=repr(exc))

    def _version(self, run_id: str, name: str) -> int:
        """The version a run publishes as: the one it reserved before a restart interrupted it (an
        identical retrain then finds its own version already published), else the next free one."""
        with self._lock:
            reserved = self.runs[run_id].model
            if reserved.name == name and reserved.version:
                return int(reserved.version)
        return self.registry.allocate(name)

    def _phase(self, run_id: str, phase: int, progress: float) -> None:
        self._update(run_id, persist=True, phase=phase, progress=progress)
        log.info("run phase", run_id=run_id, phase=T.RunPhase.Name(phase))

    def execute(self, run_id: str) -> None:
        with self._lock:
            run = self.runs[run_id]
            run.status = T.RUN_STATUS_RUNNING
            run.started_at.GetCurrentTime()
            spec = T.RunSpec()
            spec.CopyFrom(run.spec)
        try:
            with training.threads(self.settings.threads):
                if spec.kind == T.RUN_KIND_TRIGGER_DETECTOR:
                    status = self._detector_run(run_id, spec)
                else:
                    status = self._multitask_run(run_id, spec)
            with self._lock:
                self.runs[run_id].finished_at.GetCurrentTime()
            self._update(run_id, persist=True, status=status, phase=T.RUN_PHASE_DONE, progress=1.0)
            log.info("run finished", run_id=run_id, status=T.RunStatus.Name(status))
        except Exception as exc:
            log.error("run failed", run_id=run_id, error=repr(exc), trace=traceback.format_exc()[-2000:])
            with self._lock:
                self.runs[run_id].finished_at.GetCurrentTime()
            self._update(run_id, persist=True, status=T.RUN_STATUS_FAILED, error=failure_message(exc)[:2000])

    # -- data ---------------------------------------------------------------------------------------
    def _get_object(self, bucket: str, key: str) -> bytes:
        return self.store.get(key, bucket)

    def _load_datasets(self, refs: Sequence[C.DatasetRef]) -> tuple[builtins.list[data_mod.Example], builtins.list[dict]]:  # `list` is the method
        examples, used = [], []
        for ref in refs:
            if self.labels is None:
                raise RunError("datasets were requested but no label store is configured (LABEL_STORE_ADDR)")
            dv = self.labels.dataset(ref.name, ref.version)
            _header, rows = data_mod.parse_manifest(self.store.get(dv.manifest_key))
            examples += rows
            used.append({"name": dv.name, "version": dv.version, "manifest_key": dv.manifest_key, "sha256": dv.manifest_sha256, "samples": len(rows)})
        return data_mod.merge(examples), used

    def _suite_inputs(self, tasks: set[str]) -> tuple[builtins.list[L.Suite], dict[str, np.ndarray]]:
        """Every suite (latest version) and the images of their cases, by sample id."""
        if self.labels is None:
            return [], {}
        suites = self.labels.suites()
        ids = sorted({c.sample_id for s in suites for c in s.cases})
        images: dict[str, np.ndarray] = {}
        samples = [self.labels.sample(sid) for sid in ids]
        if samples:
            arr = data_mod.fetch_images(self._get_object, [data_mod.Example(s.sample_id, "", s.bucket, s.object_key, s.content_type) for s in samples])
            images = {s.sample_id: arr[i] for i, s in enumerate(samples)}
        return suites, images

    def _suite_results(self, model, ref: C.ModelRef, suites: Sequence[L.Suite], images: dict[str, np.ndarray], record: bool = False) -> builtins.list[L.SuiteResult]:
        if not suites:
            return []
        assert self.labels is not None  # suites come from the label store (_suite_inputs)
        ids = sorted(images)
        preds = training.task_predictions(model, np.stack([images[i] for i in ids])) if ids else []
        cps = [L.CasePredictions(sample_id=sid, predictions=p) for sid, p in zip(ids, preds)]
        return self.labels.evaluate(ref, [s.name for s in suites], cps, record)

    @staticmethod
    def _export_task_metrics(ref: C.ModelRef, metrics: dict[str, float], suite_tasks: dict[str, str], results: Sequence[L.SuiteResult], declared: set[str]) -> None:
        """Per declared task: its split metrics (val/<name>, test/<name>; a small dataset may have no
        validation samples) and the pass rate of each of its suites (suite/<suite>)."""
        for key, value in metrics.items():
            split, task, metric = (key.split("/", 2) + ["", ""])[:3]
            if split in ("val", "test") and metric and task in declared:
                TASK_METRIC.labels(SERVICE, ref.name, str(ref.version), task, f"{split}/{metric}").set(value)
        for r in results:
            task = suite_tasks.get(r.suite, "")
            if task in declared:
                TASK_METRIC.labels(SERVICE, ref.name, str(ref.version), task, f"suite/{r.suite}").set(r.pass_rate)

    def _base(self, spec: T.RunSpec) -> tuple[T.ModelVersion | None, MultiTaskNet | None]:
        name = spec.base_model.name or spec.model_name
        mv = self.registry.get(name, spec.base_model.version)
        if mv is None:
            if spec.base_model.version:
                raise RunError(f"spec.base_model: {name}@{spec.base_model.version} does not exist")
            return None, None
        if mv.state == T.MODEL_STATE_REFUSED:
            raise RunError(f"spec.base_model: {name}@{mv.model.version} was refused by the gate")
        return mv, torchscript.from_bytes(self.store.get(mv.weights_key))

    # -- the multitask run ------------------------------------------------------------------------------
    def _multitask_run(self, run_id: str, spec: T.RunSpec) -> int:
        s = self.settings
        self._phase(run_id, T.RUN_PHASE_PREPARING, 0.01)
        tasks = [d.spec for d in self.declared]
        train_tasks = set(spec.tasks) or {t.name for t in tasks}
        examples, used = self._load_datasets(spec.datasets)
        seed = int(spec.seed)
        if examples:
            images = data_mod.fetch_images(self._get_object, examples)
            splits = data_mod.to_splits(tasks, examples, images)
        if not examples or not len(splits["train"]):
            n = int(hyperparameters.get(spec, "fallback_samples", s.fallback_samples))
            world = str(hyperparameters.get(spec, "fallback_world", "default"))
            splits = data_mod.generated(tasks, n, seed, world)
            used.append({"name": f"generator:{world}", "version": 0, "samples": n, "seed": seed})
        replay = int(hyperparameters.get(spec, "replay_samples", 0))
        if replay > 0 and used and not used[-1]["name"].startswith("generator:"):
            # Rehearsal: fine-tuning on a few dozen new labels alone makes the model forget the common
            # case it was trained on (the gate then refuses it); mixing in frames of that distribution
            # keeps it. Synthetic (simulator ground truth), so no label budget is spent on them.
            world = str(hyperparameters.get(spec, "replay_world", "common"))
            splits["train"] = data_mod.concat(splits["train"], data_mod.generated(tasks, replay, seed, world, val_fraction=0.0)["train"])
            used.append({"name": f"replay:{world}", "version": 0, "samples": replay, "seed": seed})
        for split in splits.values():  # only the requested tasks' labels drive the loss
            split.annotations = [{k: v for k, v in a.items() if k in train_tasks} for a in split.annotations]
        base_mv, base = self._base(spec)
        model, fresh = training.build_model(tasks, base, seed, spec.from_scratch, branch_blocks=int(hyperparameters.get(spec, "branch_blocks", 0)))
        self._update(run_id, persist=True, fresh_heads=fresh, datasets_used=[f"{d['name']}@{d['version']}" if d["version"] else d["name"] for d in used], metrics={"train/samples": float(len(splits["train"]))})

        self._phase(run_id, T.RUN_PHASE_TRAINING, 0.1)
        epochs = int(spec.epochs or s.default_epochs)
        only = [h.strip() for h in str(hyperparameters.get(spec, "train_heads", "")).split(",") if h.strip()]  # e.g. a new task's head alone
        trained = self._train(run_id, spec, model, splits["train"], epochs=epochs, batch_size=int(hyperparameters.get(spec, "batch_size", s.batch_size)), lr=float(hyperparameters.get(spec, "lr", s.lr)), seed=seed, train_heads=only)

        self._phase(run_id, T.RUN_PHASE_EVALUATING, 0.8)
        metrics = training.evaluate(model, splits["val"], "val")
        metrics.update(training.evaluate(model, splits["test"], "test") if len(splits["test"]) else {})
        version = self._version(run_id, spec.model_name)
        ref = C.ModelRef(name=spec.model_name, version=version)
        self._update(run_id, persist=True, metrics=metrics, model=ref)
        suites, case_images = self._suite_inputs(train_tasks)
        after = self._suite_results(model, ref, suites, case_images)
        self._export_task_metrics(ref, metrics, {s.name: s.task for s in suites}, after, {t.name for t in tasks})
        before: list[L.SuiteResult] | None = None
        perturbed: list[list[L.SuiteResult]] = []
        if base is not None and base_mv is not None:  # both or neither (_base)
            before = self._suite_results(base, base_mv.model, suites, case_images)
            # The baseline on moved images only matters for a case it loses: no loss, no extra evaluations.
            if gate.lost(after, before):
                perturbed = [self._suite_results(base, base_mv.model, suites, moved) for moved in shifted(case_images, self.settings.gate_shift_px)]
        for r in after:
            metrics[f"suite/{r.suite}/pass_rate"] = r.pass_rate

        self._phase(run_id, T.RUN_PHASE_GATING, 0.9)
        report = gate.decide(ref, base_mv.model if base_mv else None, after, before, list(spec.waivers), perturbed)
        self._update(run_id, persist=True, gate_report=report, metrics=metrics)
        mv = T.ModelVersion(model=ref, kind=T.RUN_KIND_MULTITASK, tasks=[t.name for t in tasks], run_id=run_id, gate_report=report)
        mv.metrics.update(metrics)
        if base_mv is not None:
            mv.parent.CopyFrom(base_mv.model)
        for d in used:
            if d["version"]:
                mv.datasets.add(name=d["name"], version=d["version"])
        for r in after:
            summary = L.SuiteResult()
            summary.CopyFrom(r)
            summary.ClearField("case_results")
            mv.suite_results.append(summary)
        mv.created_at.GetCurrentTime()
        if not report.accepted:
            return self._refuse(run_id, mv, model, report)

        self._phase(run_id, T.RUN_PHASE_PUBLISHING, 0.95)
        extra = {
            "trainer": {
                "kind": T.RUN_KIND_MULTITASK,
                "gate_report": json_format.MessageToDict(report),
                "suite_results": [json_format.MessageToDict(r) for r in mv.suite_results],
                "fresh_heads": fresh,
                "seed": seed,
                "epochs": epochs,
                "triggered_by": self.runs[run_id].triggered_by,
                "training": {k: trained.report.get(k) for k in ("backend", "device", "world_size", "samples_per_s", "restart_count", "resumed_from_epoch", "trainjob") if trained.report.get(k) is not None},
            }
        }
        pv = model_repo.publish(self.store, model, spec.model_name, version, parent=base_mv.model.version if base_mv else None, metrics=metrics, datasets=used, run_id=run_id, extra=extra)
        role = C.MODEL_ROLE_PRODUCTION if spec.promote else C.MODEL_ROLE_CANDIDATE
        event = model_repo.published_event(pv, role, self.store.bucket, run_id)
        self.publish_event(topics.MODELS_PUBLISHED, pv.name, event)
        self.registry.on_published(pv.name, event)
        if suites:  # the published version's results, for `longtail suites report` and dashboards
            try:
                self._suite_results(model, ref, suites, case_images, record=True)
            except Exception as exc:
                log.warning("could not record suite results", run_id=run_id, error=repr(exc))
        return T.RUN_STATUS_SUCCEEDED

    def _train(self, run_id: str, spec: T.RunSpec, model: MultiTaskNet, data: data_mod.Split, **hyper) -> backends_mod.Trained:
        """The optimisation of a multitask run, on the run's backend; the trained weights are loaded
        into `model`."""
        backend = self.backends[str(hyperparameters.get(spec, "backend", self.settings.backend))]
        processes = int(hyperparameters.get(spec, "processes", 0))
        job = jobs.JobInput.of(run_id, model, data.images, fitting.encode_targets(model.tasks, data.annotations), processes=processes, **hyper)
        last = [0.0]

        def on_progress(fraction: float, epoch: int | None, loss: float | None) -> None:
            now = time.monotonic()
            if epoch is not None:
                self._update(run_id, persist=True, progress=0.1 + 0.7 * fraction, epoch=epoch, metrics={"train/loss": float(loss or 0.0)})
            elif now - last[0] > 0.5 or fraction >= 1.0:
                last[0] = now
                self._update(run_id, progress=0.1 + 0.7 * fraction)

        try:
            trained = backend.train(job, on_progress)
        except (ValueError, backends_mod.JobFailed) as exc:
            raise RunError(str(exc)) from None
        model.load_state_dict(trained.weights)
        report = trained.report
        extra = {"train/processes": float(report.get("world_size") or 1)}
        if report.get("samples_per_s"):
            extra["train/samples_per_s"] = float(report["samples_per_s"])
        self._update(run_id, persist=True, metrics=extra)
        log.info("run trained", run_id=run_id, backend=backend.name, device=report.get("device"), world_size=report.get("world_size"), samples_per_s=report.get("samples_per_s"))
        return trained

    def _refuse(self, run_id: str, mv: T.ModelVersion, model, report: T.GateReport) -> int:
        mv.state = T.MODEL_STATE_REFUSED
        self.registry.save_refused(mv, torchscript.to_bytes(model))
        event = E.ModelRefused(model=mv.model, gate_report=report, run_id=run_id, refused_by=SERVICE, reason="; ".join(report.reasons)[:2000])
        event.refused_at.GetCurrentTime()
        self.publish_event(topics.MODELS_REFUSED, mv.model.name, event)
        log.warning("gate refused the candidate", run_id=run_id, model=f"{mv.model.name}@{mv.model.version}", reasons=list(report.reasons))
        return T.RUN_STATUS_REFUSED

    # -- the trigger-detector run ------------------------------------------------------------------------
    def _detector_run(self, run_id: str, spec: T.RunSpec) -> int:
        s = self.settings
        self._phase(run_id, T.RUN_PHASE_PREPARING, 0.01)
        name = spec.detector_name
        task = spec.tasks[0] if spec.tasks else "stop_sign"
        seed = int(spec.seed)
        examples, used = self._load_datasets(spec.datasets)
        examples = [e for e in examples if task in e.labels]
        if examples:
            images = data_mod.fetch_images(self._get_object, examples)
            labels = np.array([det.is_positive(spec.positive_predicate, task, e.labels[task]) for e in examples], dtype=np.int64)
            train_idx = np.array([i for i, e in enumerate(examples) if e.split == "train"], dtype=np.int64)
            val_idx = np.array([i for i, e in enumerate(examples) if e.split != "train"], dtype=np.int64)
        if not examples or labels.sum() == 0 or labels.sum() == len(labels):
            if examples:
                raise RunError(f"the datasets have {int(labels.sum())} positive(s) of {len(labels)} labelled samples for {spec.positive_predicate!r}: a detector needs both positives and negatives")
            images, labels = self._generated_detector_data(task, spec.positive_predicate, int(hyperparameters.get(spec, "fallback_samples", 160)), seed)
            order = np.random.default_rng(seed).permutation(len(labels))
            train_idx, val_idx = order[: len(order) // 2], order[len(order) // 2 :]
            used.append({"name": "generator:detector", "version": 0, "samples": len(labels), "seed": seed})
        if len(np.unique(labels[val_idx])) < 2:  # too few examples to hold any out: measure on train (reported)
            val_idx, where = train_idx, "train"
        else:
            where = "val"
        self._update(
            run_id,
            persist=True,
            datasets_used=[f"{d['name']}@{d['version']}" if d["version"] else d["name"] for d in used],
            fresh_heads=[name],
            metrics={"train/samples": float(len(train_idx)), "train/positives": float(labels[train_idx].sum())},
        )

        self._phase(run_id, T.RUN_PHASE_TRAINING, 0.1)

        def on_step(done: int, total: int) -> None:
            self._update(run_id, progress=0.1 + 0.7 * done / max(total, 1))

        epochs = int(spec.epochs or 12)
        net = det.train_detector(name, images[train_idx], labels[train_idx], seed=seed, epochs=epochs, on_step=on_step)

        self._phase(run_id, T.RUN_PHASE_EVALUATING, 0.8)
        sc = det.scores(net, images[val_idx])
        pos, neg = sc[labels[val_idx] == 1], sc[labels[val_idx] == 0]
        auc = det.auc(pos, neg)
        metrics = {f"{where}/auc": auc, f"{where}/positive_mean_score": float(pos.mean()), f"{where}/negative_mean_score": float(neg.mean()), f"{where}/positives": float(len(pos)), f"{where}/negatives": float(len(neg))}
        version = self._version(run_id, spec.model_name)
        ref = C.ModelRef(name=spec.model_name, version=version)
        self._update(run_id, persist=True, metrics=metrics, model=ref)

        self._phase(run_id, T.RUN_PHASE_GATING, 0.9)
        min_auc = float(hyperparameters.get(spec, "min_auc", s.detector_min_auc))
        report = T.GateReport(candidate=ref, accepted=auc >= min_auc)
        report.reasons.append(f"{where} AUC {auc:.3f} {'>=' if report.accepted else '<'} {min_auc:.2f} (positives score {pos.mean():.2f} on average, negatives {neg.mean():.2f})")
        self._update(run_id, persist=True, gate_report=report)
        mv = T.ModelVersion(model=ref, kind=T.RUN_KIND_TRIGGER_DETECTOR, detector_name=name, tasks=[name], run_id=run_id, gate_report=report)
        mv.metrics.update(metrics)
        mv.created_at.GetCurrentTime()
        if not report.accepted:
            return self._refuse(run_id, mv, net, report)

        self._phase(run_id, T.RUN_PHASE_PUBLISHING, 0.95)
        extra = {"trainer": {"kind": T.RUN_KIND_TRIGGER_DETECTOR, "detector_name": name, "score_key": det.key(name, version), "positive_predicate": spec.positive_predicate, "task": task, "gate_report": json_format.MessageToDict(report)}}
        pv = model_repo.publish(self.store, net, spec.model_name, version, metrics=metrics, datasets=used, run_id=run_id, extra=extra)
        event = model_repo.published_event(pv, C.MODEL_ROLE_TRIGGER_DETECTOR, self.store.bucket, run_id)
        event.detector_name = name
        self.publish_event(topics.MODELS_PUBLISHED, pv.name, event)
        self.registry.on_published(pv.name, event)
        return T.RUN_STATUS_SUCCEEDED

    def _generated_detector_data(self, task: str, predicate: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Simulator frames labelled from ground truth: approaches to stop signs in a world where
        every stop sign is occluded, and in one with the long tail off, plus other scenes."""
        from longtail.synthetic.frames import TRAIN_WORLD_SEED, annotations_from_truth, occluded_only, sample_frames
        from longtail.synthetic.world import STOP_SIGN, World, WorldConfig

        specs = [d.spec for d in self.declared if d.name == task]
        if not specs:
            raise RunError(f"task {task!r} is not declared")
        a = sample_frames(World(occluded_only(), seed=TRAIN_WORLD_SEED + 50 + seed), n // 2, seed=seed, mix={STOP_SIGN: 1.0}, distance=(4.0, 25.0))
        b = sample_frames(World(WorldConfig().common_only(), seed=TRAIN_WORLD_SEED + 51 + seed), n - n // 2, seed=seed, distance=(4.0, 25.0))
        images = np.concatenate([a.images, b.images])
        labels = []
        for ann in annotations_from_truth(specs, a.truths + b.truths):
            objs = ann.get(task)
            out = {"detection": {"detections": [{"cls": o.cls, "confidence": 1.0, "attributes": dict(o.attributes)} for o in objs]}} if objs else None
            labels.append(det.is_positive(predicate, task, out) if out else False)
        return images, np.array(labels, dtype=np.int64)
