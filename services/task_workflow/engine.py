"""What the workflow asks of the data engine, and the implementation that asks the running
services over gRPC (label store, trainer, trigger catalog). The workflow's unit tests give it a
fake of the same shape."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.models.v1 import trainer_pb2 as T
from longtail.tasks import DeclaredTask, default_suite_yaml, label_store_task
from longtail.triggers.v1 import triggers_pb2 as S

TERMINAL = (T.RUN_STATUS_SUCCEEDED, T.RUN_STATUS_REFUSED, T.RUN_STATUS_FAILED)


@dataclass
class RunResult:
    accepted: bool
    version: int = 0
    reason: str = ""
    suites: dict[str, tuple[int, int]] = field(default_factory=dict)  # suite -> (passed, cases) of the candidate
    regressed: list[str] = field(default_factory=list)  # suites that lost a stable case or pass rate (docs/trainer.md, the gate)


@dataclass
class Backtest:
    fires: int
    frames: int
    fires_per_car_hour: float


@dataclass
class TriggerPlan:
    trigger_id: str
    expression: str
    task: str
    priority: int
    upload_budget: int
    max_uploads_per_car_hour: int
    description: str


class Engine(Protocol):
    def declare(self, task: DeclaredTask) -> str: ...  # "created" | "updated" | "unchanged"
    def labelled(self, task: str, trigger_id: str = "") -> list[str]: ...  # sample ids labelled for the task (not suite cases)
    def is_positive(self, sample_id: str, task: str, predicate: str) -> bool: ...
    def dataset(self, name: str, task: str, sample_ids: list[str], description: str) -> str: ...  # "name@version"
    def train_detector(self, detector: str, task: str, dataset: str, predicate: str, seed: int, epochs: int) -> RunResult: ...
    def ensure_trigger(self, plan: TriggerPlan) -> None: ...
    def backtest(self, trigger_id: str, since: float) -> Backtest: ...
    def activate(self, trigger_id: str) -> None: ...
    def retire(self, trigger_id: str, reason: str) -> None: ...
    def suite_size(self, suite: str) -> int: ...
    def promote(self, suite: str, sample_id: str, predicate: str, note: str) -> None: ...
    def train(self, model: str, task: str, dataset: str, seed: int, epochs: int, hyperparameters: dict, promote: bool) -> RunResult: ...


def suite_regressed(g: T.SuiteGate) -> bool:
    """The gate's meaning: a stable case lost (waived or not) or the pass rate down; a case the
    baseline passed only by chance does not count."""
    return bool(set(g.regressed_case_ids) - set(g.unstable_case_ids)) or g.after_pass_rate + 1e-12 < g.before_pass_rate


class GrpcEngine:
    """The running services, with operator credentials (`auth`: gRPC metadata)."""

    def __init__(self, labels, trainer, catalog, auth: list[tuple[str, str]], run_timeout_s: float = 1800.0) -> None:
        self.labels, self.trainer, self.catalog, self.auth = labels, trainer, catalog, auth
        self.run_timeout_s = run_timeout_s

    # -- label store ------------------------------------------------------------------------
    def declare(self, task: DeclaredTask) -> str:
        try:
            old = self.labels.GetTask(L.GetTaskRequest(name=task.name), timeout=10).task
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            old = None
        want = label_store_task(task)
        outcome = "unchanged"
        if old is None or _schema(old) != _schema(want):
            created = self.labels.UpsertTask(L.UpsertTaskRequest(task=want), metadata=self.auth, timeout=30).created
            outcome = "created" if created else "updated"
        suites = {s.name for s in self.labels.ListSuites(L.ListSuitesRequest(), timeout=10).suites}
        if task.suite_name not in suites:
            self.labels.UpsertSuite(L.UpsertSuiteRequest(yaml=default_suite_yaml(task)), metadata=self.auth, timeout=30)
        return outcome

    def labelled(self, task: str, trigger_id: str = "") -> list[str]:
        out, token = [], ""
        flt = L.SampleFilter(tasks=[task], label_status=L.LABEL_STATUS_LABELLED, trigger_ids=[trigger_id] if trigger_id else [])
        while True:
            page = self.labels.ListSamples(L.ListSamplesRequest(filter=flt, page_size=500, page_token=token), timeout=30)
            out += [s.sample_id for s in page.samples]
            token = page.next_page_token
            if not token:
                return out

    def is_positive(self, sample_id: str, task: str, predicate: str) -> bool:
        from longtail.triggerlang.predicates import label_matches

        r = self.labels.GetSample(L.GetSampleRequest(sample_id=sample_id), timeout=10)
        final = {s.task: s.final_label_id for s in r.states}.get(task, "")
        label = next((x for x in r.labels if x.label_id == final), None)
        return label is not None and label_matches(predicate, task, label.annotation)

    def dataset(self, name: str, task: str, sample_ids: list[str], description: str) -> str:
        ds = self.labels.CreateDataset(L.CreateDatasetRequest(name=name, tasks=[task], filter=L.SampleFilter(sample_ids=sample_ids), split=L.SplitSpec(val_fraction=0.2), description=description), metadata=self.auth, timeout=120).dataset
        return f"{ds.name}@{ds.version}"

    def suite_size(self, suite: str) -> int:
        return int(self.labels.GetSuite(L.GetSuiteRequest(name=suite), timeout=10).suite.cases_count)

    def promote(self, suite: str, sample_id: str, predicate: str, note: str) -> None:
        self.labels.PromoteToSuiteCase(L.PromoteToSuiteCaseRequest(suite=suite, sample_id=sample_id, predicate=predicate, note=note), metadata=self.auth, timeout=30)

    # -- trainer ----------------------------------------------------------------------------
    def train_detector(self, detector: str, task: str, dataset: str, predicate: str, seed: int, epochs: int) -> RunResult:
        spec = T.RunSpec(kind=T.RUN_KIND_TRIGGER_DETECTOR, model_name=detector, detector_name=detector, tasks=[task], positive_predicate=predicate, seed=seed, epochs=epochs, datasets=[_ref(dataset)])
        return self._run(spec)

    def train(self, model: str, task: str, dataset: str, seed: int, epochs: int, hyperparameters: dict, promote: bool) -> RunResult:
        from google.protobuf import struct_pb2

        heads = list(self.trainer.GetModel(T.GetModelRequest(model=C.ModelRef(name=model)), timeout=10).model.tasks)
        hp = struct_pb2.Struct()
        hp.update(hyperparameters)
        spec = T.RunSpec(model_name=model, tasks=list(dict.fromkeys(heads + [task])), promote=promote, seed=seed, epochs=epochs, hyperparameters=hp, datasets=[_ref(dataset)])
        return self._run(spec)

    def _run(self, spec: T.RunSpec) -> RunResult:
        run_id = self.trainer.StartRun(T.StartRunRequest(spec=spec), metadata=self.auth, timeout=30).run.run_id
        deadline = time.monotonic() + self.run_timeout_s
        while True:
            run = self.trainer.GetRun(T.GetRunRequest(run_id=run_id), timeout=10).run
            if run.status in TERMINAL:
                break
            if time.monotonic() > deadline:
                return RunResult(False, reason=f"run {run_id} did not finish in {self.run_timeout_s:.0f} s")
            time.sleep(1.0)
        gate = run.gate_report
        return RunResult(
            accepted=run.status == T.RUN_STATUS_SUCCEEDED and gate.accepted,
            version=int(run.model.version),
            reason="; ".join(list(gate.reasons) + ([run.error] if run.error else [])),
            suites={g.suite: (int(round(g.after_pass_rate * g.total)), int(g.total)) for g in gate.suites},
            regressed=[g.suite for g in gate.suites if suite_regressed(g)],
        )

    # -- trigger catalog --------------------------------------------------------------------
    def ensure_trigger(self, plan: TriggerPlan) -> None:
        spec = S.TriggerSpec(
            name=plan.trigger_id,
            expression=plan.expression,
            site=S.TRIGGER_SITE_EDGE,
            task=plan.task,
            priority=plan.priority,
            firing_mode=S.FIRING_MODE_RISING_EDGE,
            upload_budget=plan.upload_budget,
            max_uploads_per_car_hour=plan.max_uploads_per_car_hour,
            description=plan.description,
        )
        check = self.catalog.ValidateTrigger(S.ValidateTriggerRequest(expression=spec.expression, spec=spec), metadata=self.auth, timeout=10)
        if not check.ok:
            raise ValueError(f"trigger {plan.trigger_id} does not validate: {'; '.join(str(e) for e in check.errors)}")
        try:
            self.catalog.GetTrigger(S.GetTriggerRequest(trigger_id=plan.trigger_id), timeout=10)
            return  # created by an earlier attempt of this step
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        self.catalog.CreateTrigger(S.CreateTriggerRequest(trigger_id=plan.trigger_id, spec=spec), metadata=self.auth, timeout=10)

    def backtest(self, trigger_id: str, since: float) -> Backtest:
        from google.protobuf import timestamp_pb2

        start, end = timestamp_pb2.Timestamp(), timestamp_pb2.Timestamp()
        start.FromMilliseconds(int(since * 1000))
        end.GetCurrentTime()
        bt = self.catalog.BacktestTrigger(S.BacktestTriggerRequest(trigger=S.TriggerRef(trigger_id=trigger_id), time_range=C.TimeRange(since=start, until=end)), metadata=self.auth, timeout=300)
        return Backtest(int(bt.fires), int(bt.frames_evaluated), float(bt.fires_per_car_hour))

    def activate(self, trigger_id: str) -> None:
        self.catalog.ActivateTrigger(S.ActivateTriggerRequest(trigger_id=trigger_id), metadata=self.auth, timeout=10)

    def retire(self, trigger_id: str, reason: str) -> None:
        self.catalog.RetireTrigger(S.RetireTriggerRequest(trigger_id=trigger_id, reason=reason), metadata=self.auth, timeout=10)


def _ref(dataset: str) -> C.DatasetRef:
    name, _, version = dataset.partition("@")
    return C.DatasetRef(name=name, version=int(version or 0))


def _schema(task: L.Task) -> tuple:
    return (task.prototype, list(task.classes), [(a.name, list(a.values)) for a in task.attributes], list(task.keypoint_names), max(task.labels_per_sample, 1), round(task.object_size_m, 4))
