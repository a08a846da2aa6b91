"""Fakes for the trainer unit tests (the in-memory `store` fixture is in tests/unit/conftest.py): a label store whose suite
evaluation runs the label store's own predicate module (the same semantics as EvaluateSuites)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from longtail.labels.v1 import labels_pb2 as L
from longtail.triggerlang.predicates import evaluate

from trainer import data as data_mod


class FakeLabels:
    """Suites with cases on images stored in `store`; evaluate() like LabelStore.suites.evaluate."""

    def __init__(self, store) -> None:  # the `store` fixture (tests/unit/conftest.py)
        self.store = store
        self.suite_list: list[L.Suite] = []
        self.samples: dict[str, L.Sample] = {}
        self.recorded: list[L.SuiteResult] = []
        self.datasets: dict[tuple[str, int], L.DatasetVersion] = {}
        self.tasks: dict[str, L.Task] = {}  # declared after the trainer started (`longtail tasks apply`)

    def add_suite(self, name: str, task: str, predicate: str, images: np.ndarray) -> list[str]:
        suite = L.Suite(name=name, version=1, task=task)
        ids = []
        for img in images:
            data = data_mod.png(img)
            sid = hashlib.sha256(data).hexdigest()
            key = f"snapshots/{sid[:2]}/{sid}.png"
            self.store.put_at(key, data)
            self.samples[sid] = L.Sample(sample_id=sid, bucket="longtail", object_key=key, content_type="image/png")
            suite.cases.add(case_id=hashlib.sha256(f"{name}/{sid}/{predicate}".encode()).hexdigest(), suite=name, sample_id=sid, predicate=predicate)
            ids.append(sid)
        suite.cases_count = len(suite.cases)
        self.suite_list.append(suite)
        return ids

    def suites(self):
        return list(self.suite_list)

    def task(self, name):
        return self.tasks.get(name)

    def sample(self, sample_id):
        return self.samples[sample_id]

    def dataset(self, name, version=0):
        if version == 0:
            version = max(v for n, v in self.datasets if n == name)
        return self.datasets[(name, version)]

    def evaluate(self, model, suites, predictions, record):
        given = {(cp.sample_id, t): p for cp in predictions for t, p in cp.predictions.items()}
        out = []
        for s in self.suite_list:
            if s.name not in suites:
                continue
            r = L.SuiteResult(suite=s.name, suite_version=s.version, model=model, total=len(s.cases))
            for c in s.cases:
                o = evaluate(c.predicate, given.get((c.sample_id, s.task)))
                r.case_results.add(case_id=c.case_id, sample_id=c.sample_id, passed=o.passed, detail=o.detail)
                r.passed += o.passed
                if not o.passed:
                    r.failed_case_ids.append(c.case_id)
            r.pass_rate = r.passed / r.total if r.total else 0.0
            out.append(r)
        if record:
            self.recorded += out
        return out


@pytest.fixture
def labels(store):
    return FakeLabels(store)


@pytest.fixture(autouse=True)
def _threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)
