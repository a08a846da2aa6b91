"""The model repository layout shared by the trainer and inference: publish, validate, refuse."""

from __future__ import annotations

import hashlib
import json
import sys
import types

import numpy as np
import pytest
import torch

from longtail import model_repo
from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2
from longtail.model import torchscript
from longtail.model_repo import InvalidModelVersion

WEATHER = tasks_mod.TaskSpec("weather", "classification", ("dry", "wet", "snow"))


def test_publish_writes_tritons_layout_and_validates(store, make_model):
    pv = model_repo.publish(store, make_model(0), "multitask", metrics={"val/loss": 0.5}, run_id="run-1")
    assert pv.version == 1 and pv.tasks == ("stop_sign", "traffic_light")
    assert set(store.objects) == {"models/multitask/config.pbtxt", "models/multitask/1/model.pt", "models/multitask/1/model.py", "models/multitask/1/manifest.json"}
    assert pv.sha256 == hashlib.sha256(store.objects[pv.weights_key]).hexdigest()
    cfg = model_repo.parse_config(store.objects["models/multitask/config.pbtxt"].decode(), "multitask")
    assert cfg.name == "multitask" and cfg.max_batch_size == 64 and cfg.dynamic_batching.max_queue_delay_microseconds > 0
    mv = model_repo.load_version(store, "multitask", 1)
    assert [t.name for t in mv.tasks] == ["stop_sign", "traffic_light"] and mv.manifest["metrics"] == {"val/loss": 0.5}
    # the next version gets the next number; the cars' file is the plain TorchScript archive
    pv2 = model_repo.publish(store, make_model(1, [WEATHER]), "multitask", parent=1)
    assert pv2.version == 2 and pv2.parent == 1 and model_repo.list_versions(store, "multitask") == [1, 2]
    assert [t.name for t in torchscript.from_bytes(store.objects[pv2.weights_key]).tasks] == ["stop_sign", "traffic_light", "weather"]
    event = model_repo.published_event(pv2, common_pb2.MODEL_ROLE_PRODUCTION, bucket="longtail")
    assert (event.model.name, event.model.version, event.parent.version, event.weights_key, list(event.tasks)) == ("multitask", 2, 1, "models/multitask/2/model.pt", ["stop_sign", "traffic_light", "weather"])


def test_versions_are_immutable_and_republishing_is_idempotent(store, make_model):
    net = make_model(0)
    assert model_repo.publish(store, net, "m", 4).version == 4
    assert model_repo.publish(store, net, "m", 4).version == 4  # a retried publish
    with pytest.raises(ValueError, match="immutable"):
        model_repo.publish(store, make_model(9), "m", 4)
    with pytest.raises(ValueError, match="model name"):
        model_repo.publish(store, net, "Bad/Name")


def test_split_raw_gives_back_every_head_output(store, make_model):
    net = make_model(3, [WEATHER])
    x = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        raw = net(x)
    layout = model_repo.output_layout(net.tasks)
    flat = torch.cat([raw[t][o] for t, o, _ in layout], 1).numpy()
    back = model_repo.split_raw(flat, layout)
    for t, o, _ in layout:
        np.testing.assert_array_equal(back[t][o].numpy(), raw[t][o].numpy())
    with pytest.raises(ValueError, match="layout needs"):
        model_repo.split_raw(flat[:, :-1], layout)


def _tamper(store, key, change):
    store.objects[key] = change(store.objects[key])


def _rewrite_manifest(store, name, version, edit):
    key = model_repo.file_key(name, version, "manifest.json")
    manifest = json.loads(store.objects[key])
    edit(manifest)
    store.objects[key] = json.dumps(manifest).encode()


def test_corrupt_and_incompatible_versions_are_refused_with_a_reason(store, make_model):
    model_repo.publish(store, make_model(0), "m")
    for version in (2, 3, 4, 5, 6):
        model_repo.publish(store, make_model(version), "m", version)
    # 2: weights changed after publication -> sha256 mismatch
    _tamper(store, model_repo.file_key("m", 2, "model.pt"), lambda b: b[:-10] + b"0123456789")
    # 3: garbage weights with a manifest that agrees (a broken trainer) -> does not load
    store.objects[model_repo.file_key("m", 3, "model.pt")] = b"not a zip"
    _rewrite_manifest(store, "m", 3, lambda m: m["files"]["model.pt"].update(sha256=hashlib.sha256(b"not a zip").hexdigest()))
    # 4: manifest declares a task the archive has no head for
    _rewrite_manifest(store, "m", 4, lambda m: (m["tasks"].append(WEATHER.to_dict()), m["outputs"].append({"task": "weather", "output": "logits", "width": 3})))
    # 5: manifest missing
    del store.objects[model_repo.file_key("m", 5, "manifest.json")]
    # 6: layout width does not match the heads
    _rewrite_manifest(store, "m", 6, lambda m: m["outputs"][0].update(width=7))
    reasons = {}
    for version in (2, 3, 4, 5, 6, 9):
        with pytest.raises(InvalidModelVersion) as err:
            model_repo.load_version(store, "m", version)
        reasons[version] = str(err.value)
    assert "sha256" in reasons[2]
    assert "not a loadable TorchScript archive" in reasons[3]
    assert "declares tasks" in reasons[4]
    assert "manifest.json is missing" in reasons[5] and "is missing" in reasons[9]
    assert "layout" in reasons[6]
    assert model_repo.load_version(store, "m", 1).version == 1  # the good one is untouched


def test_an_incompatible_triton_config_is_refused(store, make_model):
    model_repo.publish(store, make_model(0), "m")
    text = store.objects["models/m/config.pbtxt"].decode()
    store.objects["models/m/config.pbtxt"] = text.replace('name: "raw"', 'name: "logits"').encode()
    with pytest.raises(InvalidModelVersion, match="outputs must be exactly raw"):
        model_repo.load_version(store, "m", 1)
    store.objects["models/m/config.pbtxt"] = b"name: {{{"
    with pytest.raises(InvalidModelVersion, match="config.pbtxt"):
        model_repo.load_version(store, "m", 1)


def test_the_triton_backend_code_returns_the_concatenated_heads(store, make_model, tmp_path, monkeypatch):
    """Run BACKEND_MODEL_PY as Triton would (a fake triton_python_backend_utils), on a batch of
    two requests, and compare with the eager network."""
    net = make_model(5, [WEATHER])
    pv = model_repo.publish(store, net, "m")
    version_dir = tmp_path / "m" / "1"
    version_dir.mkdir(parents=True)
    for f in ("model.pt", "model.py", "manifest.json"):
        (version_dir / f).write_bytes(store.objects[pv.prefix + f])

    class Tensor:
        def __init__(self, name, array):
            self.name, self.array = name, array

        def as_numpy(self):
            return self.array

    class Response:
        def __init__(self, output_tensors, error=None):
            self.output_tensors, self.error = output_tensors, error

    utils = types.SimpleNamespace(Tensor=Tensor, InferenceResponse=Response, TritonError=RuntimeError, get_input_tensor_by_name=lambda r, name: r[name])
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", utils)
    namespace: dict = {}
    exec(compile((version_dir / "model.py").read_text(), str(version_dir / "model.py"), "exec"), namespace)
    backend = namespace["TritonPythonModel"]()
    cfg = json.dumps({"parameters": {"torch_threads": {"string_value": "1"}}})
    backend.initialize({"model_config": cfg, "model_repository": str(tmp_path / "m"), "model_version": "1"})
    a = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    b = np.random.default_rng(1).integers(0, 255, (1, 64, 64, 3), dtype=np.uint8)
    responses = backend.execute([{"images": Tensor("images", a)}, {"images": Tensor("images", b)}])
    with torch.no_grad():
        raw = net(torch.from_numpy(np.concatenate([a, b])))
    want = torch.cat([raw[t][o] for t, o, _ in model_repo.output_layout(net.tasks)], 1).numpy()
    got = np.concatenate([r.output_tensors[0].array for r in responses])
    assert [r.output_tensors[0].array.shape[0] for r in responses] == [2, 1]
    np.testing.assert_allclose(got, want, atol=1e-5)
