"""The trainer's client of the label store (gRPC only: tasks, suites, datasets, evaluation)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from longtail.access import SERVICE
from longtail.auth import OPERATOR_AUDIENCE, issue_token
from longtail.common.v1 import common_pb2 as C
from longtail.grpc_client import channel
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.log import get_logger
from longtail.tasks import DeclaredTask, default_suite_yaml, label_store_task

log = get_logger(__name__)
TIMEOUT = 30.0


class LabelStoreClient:
    def __init__(self, address: str, operator_secret: str = "", operator_token: str = "", credentials: grpc.ChannelCredentials | None = None) -> None:
        self.address = address
        # Retries UNAVAILABLE (a label store restarting); TLS with `credentials`.
        self.channel = channel(address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)], credentials=credentials)
        self.stub = labels_pb2_grpc.LabelStoreServiceStub(self.channel)
        self._secret = operator_secret
        self._token = operator_token

    def _auth(self) -> list[tuple[str, str]]:
        token = self._token or (issue_token("trainer", self._secret, 3600, audience=OPERATOR_AUDIENCE, roles=(SERVICE,)) if self._secret else "")
        return [("authorization", f"Bearer {token}")] if token else []

    def close(self) -> None:
        self.channel.close()

    # -- declarations --------------------------------------------------------------------------
    def declare(self, declared: Sequence[DeclaredTask]) -> dict[str, str]:
        """UpsertTask every declared task (schema + queue) and create its default suite if it does
        not exist. Returns {task: "created"|"updated"|"unchanged"}."""
        existing = {t.name: t for t in self.stub.ListTasks(L.ListTasksRequest(), timeout=TIMEOUT).tasks}
        suites = {s.name for s in self.stub.ListSuites(L.ListSuitesRequest(), timeout=TIMEOUT).suites}
        out = {}
        for d in declared:
            want = label_store_task(d)
            old = existing.get(d.name)
            same = (
                old is not None
                and list(old.classes) == list(want.classes)
                and list(old.keypoint_names) == list(want.keypoint_names)
                and [(a.name, list(a.values)) for a in old.attributes] == [(a.name, list(a.values)) for a in want.attributes]
                and old.prototype == want.prototype
                and max(old.labels_per_sample, 1) == max(want.labels_per_sample, 1)
            )
            if same:
                out[d.name] = "unchanged"
            else:
                r = self.stub.UpsertTask(L.UpsertTaskRequest(task=want), metadata=self._auth(), timeout=TIMEOUT)
                out[d.name] = "created" if r.created else "updated"
            if d.suite_name and d.suite_name not in suites:
                self.stub.UpsertSuite(L.UpsertSuiteRequest(yaml=default_suite_yaml(d)), metadata=self._auth(), timeout=TIMEOUT)
        return out

    def task(self, name: str) -> L.Task | None:
        """The label store's declaration of `name`, None if it has none."""
        try:
            return self.stub.GetTask(L.GetTaskRequest(name=name), timeout=TIMEOUT).task
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    # -- datasets ------------------------------------------------------------------------------
    def dataset(self, name: str, version: int = 0) -> L.DatasetVersion:
        return self.stub.GetDataset(L.GetDatasetRequest(name=name, version=version), timeout=TIMEOUT).dataset

    def create_dataset(self, name: str, tasks: Sequence[str], description: str = "") -> L.CreateDatasetResponse:
        return self.stub.CreateDataset(L.CreateDatasetRequest(name=name, tasks=list(tasks), description=description), metadata=self._auth(), timeout=120)

    # -- suites ---------------------------------------------------------------------------------
    def suites(self) -> list[L.Suite]:
        """The latest version of every suite, with its cases."""
        names = [s.name for s in self.stub.ListSuites(L.ListSuitesRequest(), timeout=TIMEOUT).suites]
        return [self.stub.GetSuite(L.GetSuiteRequest(name=n), timeout=TIMEOUT).suite for n in names]

    def sample(self, sample_id: str) -> L.Sample:
        return self.stub.GetSample(L.GetSampleRequest(sample_id=sample_id), timeout=TIMEOUT).sample

    def evaluate(self, model: C.ModelRef, suites: Sequence[str], predictions: Sequence[L.CasePredictions], record: bool) -> list[L.SuiteResult]:
        r = self.stub.EvaluateSuites(L.EvaluateSuitesRequest(model=model, suites=list(suites), predictions=list(predictions), record=record), metadata=self._auth() if record else None, timeout=120)
        return list(r.results)
