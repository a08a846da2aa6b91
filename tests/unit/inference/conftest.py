"""Fakes for the inference unit tests (the in-memory `store` fixture is in tests/unit/conftest.py): a Triton that runs the
published TorchScript locally (the same bytes the real server would run)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from longtail import model_repo
from longtail import tasks as tasks_mod
from longtail.model import torchscript
from longtail.model.network import MultiTaskNet


class FakeTriton:
    """load_model semantics of Triton's explicit mode: the policy's versions are loaded from the
    store (a corrupt file fails the load), the others unloaded."""

    def __init__(self, store) -> None:  # the `store` fixture (tests/unit/conftest.py)
        self.store = store
        self.models: dict[tuple[str, int], object] = {}
        self.loads: list[tuple[str, list[int]]] = []
        self.fail_load: set[int] = set()
        self.calls: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def load(self, name, config_json):
        import json

        versions = [int(v) for v in json.loads(config_json)["versionPolicy"]["specific"]["versions"]]
        self.loads.append((name, versions))
        bad = [v for v in versions if v in self.fail_load]
        if bad:
            raise RuntimeError(f"failed to load '{name}' version {bad[0]}")
        loaded = {}
        for v in versions:
            loaded[(name, v)] = self.models.get((name, v)) or torchscript.load_scripted(self.store.get(model_repo.file_key(name, v, "model.pt")))
        with self.lock:
            self.models = {k: m for k, m in self.models.items() if k[0] != name}
            self.models.update(loaded)

    def server_ready(self):
        return True

    def restart(self):
        """What a Triton restart does in explicit mode: nothing loaded."""
        with self.lock:
            self.models = {}

    def ready(self, name, version):
        return (name, int(version)) in self.models

    def infer(self, name, version, images):
        with self.lock:
            m = self.models.get((name, int(version)))
        if m is None:
            raise RuntimeError(f"Request for unknown model: '{name}' version {version} is not found")
        self.calls.append((name, int(version), images.shape[0]))
        with torch.no_grad():
            raw = m.module(torch.from_numpy(np.ascontiguousarray(images)))
        layout = model_repo.output_layout(m.tasks)
        return torch.cat([raw[t][o] for t, o, _ in layout], 1).numpy()


def make_model(seed: int, extra_tasks=()):
    torch.manual_seed(seed)
    return MultiTaskNet(list(tasks_mod.DEFAULT_TASKS) + list(extra_tasks)).eval()


@pytest.fixture(name="make_model")
def make_model_fixture():
    return make_model


@pytest.fixture
def triton(store):
    return FakeTriton(store)
