"""Every service starts the same way (docs/architecture.md, "One service runtime"): its own
settings in `<package>/settings.py` (pydantic-settings classes with the service's env prefix),
no environment read anywhere else, and `serve()` handing its parts to `longtail.runtime.ServiceRuntime`
(one watchdog, shutdown in reverse order) rather than wiring threads and watches by hand."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from longtail import config
from longtail.registry import SERVICES

ROOT = Path(__file__).resolve().parents[2] / "services"
PREFIXES = {"gateway": "GATEWAY_", "trigger_evaluator": "TRIGGER_EVALUATOR_", "map_vision": "MAP_VISION_", "label_store": "LABEL_STORE_", "inference": "INFERENCE_", "trainer": "TRAINER_"}
# grpc reads GRPC_EXPERIMENTS when first imported: the gateway sets its default before any settings load.
# The trainer's torchrun backend hands its whole environment (S3_*, LONGTAIL_DEVICE, PATH, ...) to the
# job it starts; it reads no setting from it.
ALLOWED_ENVIRON = {("gateway", "__main__.py"), ("trainer", "backends.py")}


@pytest.mark.parametrize("package", sorted(s.package for s in SERVICES.values()))
def test_settings_live_in_the_settings_module(package: str) -> None:
    module = importlib.import_module(f"{package}.settings")
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if issubclass(c, BaseSettings) and c.__module__ == module.__name__]
    assert len(classes) == 1, f"{package}/settings.py should define the service's one settings class, found {[c.__name__ for c in classes]}"
    assert classes[0].model_config.get("env_prefix") == PREFIXES[package]
    for path in (ROOT / package).rglob("*.py"):
        if path.name == "settings.py":
            continue
        tree = ast.parse(path.read_text())
        defined = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and any(getattr(b, "id", getattr(b, "attr", "")) == "BaseSettings" for b in n.bases)]
        assert not defined, f"{path.relative_to(ROOT)} defines settings {defined}: they belong in {package}/settings.py"
        if (package, path.name) in ALLOWED_ENVIRON:
            continue
        reads = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("environ", "getenv")]
        assert not reads, f"{path.relative_to(ROOT)}:{reads} reads the environment: add a field to {package}/settings.py"


@pytest.mark.parametrize("package", sorted(s.package for s in SERVICES.values()))
def test_serve_uses_the_runtime(package: str) -> None:
    source = (ROOT / package / "__main__.py").read_text()
    assert "ServiceRuntime(" in source and "runtime.run(" in source
    for hand_wired in ("threading.Thread(", "serve_until_signal", "GrpcServer("):
        assert hand_wired not in source, f"{package}/__main__.py wires {hand_wired} itself"


def test_variables_name_aliases_and_prefixes() -> None:
    from label_store.settings import LabelStoreSettings
    from trainer.settings import TrainerSettings

    assert config.variables(TrainerSettings)["label_store_addr"] == "LABEL_STORE_ADDR"
    assert config.variables(TrainerSettings)["threads"] == "TRAINER_THREADS"
    assert "database_url" not in config.own_fields(LabelStoreSettings)


def test_missing_aliased_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.settings import TrainerSettings

    monkeypatch.delenv("LABEL_STORE_ADDR", raising=False)
    with pytest.raises(config.ConfigError, match="LABEL_STORE_ADDR is not set"):
        config.load(TrainerSettings)


def test_optional_section(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert config.load_optional(config.S3Settings, "S3_ENDPOINT") is None
    monkeypatch.setenv("S3_ENDPOINT", "127.0.0.1:9000")
    with pytest.raises(config.ConfigError, match="S3_ACCESS_KEY is not set"):  # half a section is an error, not "off"
        config.load_optional(config.S3Settings, "S3_ENDPOINT")
