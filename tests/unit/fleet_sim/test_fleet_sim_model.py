"""The shared multitask network: task-declared heads, post-processing, loss, TorchScript."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2
from longtail.model import fitting, torchscript
from longtail.model.network import LAYERS_PER_BLOCK, MultiTaskNet
from longtail.predictions import to_detections
from longtail.tasks import DEFAULT_TASKS, TaskSpec

TINY = (4, 8, 8, 8)
CAUTION = TaskSpec("caution_lights", "classification", ("off", "flashing", "steady"), {"colour": ("amber", "red")})
LANDMARK = TaskSpec("sign_pose", "landmark", keypoints=("pole_base", "face_centre"))


def _images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_forward_shapes_for_any_declared_task_list():
    torch.manual_seed(0)
    tasks = [*DEFAULT_TASKS, CAUTION, LANDMARK, TaskSpec("vehicle", "detection", ("car", "truck", "bus"))]
    model = MultiTaskNet(tasks, channels=TINY).eval()
    out = model(torch.as_tensor(_images(3)))
    assert set(out) == {"stop_sign", "traffic_light", "caution_lights", "sign_pose", "vehicle"}
    assert out["stop_sign"]["presence"].shape == (3, 1) and out["stop_sign"]["box"].shape == (3, 4)
    assert out["stop_sign"]["attr:occlusion"].shape == (3, 2) and out["stop_sign"]["attr:mount"].shape == (3, 3)
    assert out["traffic_light"]["attr:light_state"].shape == (3, 3)
    assert out["caution_lights"]["logits"].shape == (3, 3) and out["caution_lights"]["attr:colour"].shape == (3, 2)
    assert out["sign_pose"]["keypoints"].shape == (3, 4) and out["sign_pose"]["visible"].shape == (3, 2)
    assert out["vehicle"]["logits"].shape == (3, 3)
    # a new task is one more head; the backbone is shared and unchanged
    base = MultiTaskNet(list(DEFAULT_TASKS), channels=TINY)
    extra = MultiTaskNet([*DEFAULT_TASKS, CAUTION], channels=TINY)
    assert set(extra.heads) - set(base.heads) == {"caution_lights"}
    assert [p.shape for p in base.backbone.parameters()] == [p.shape for p in extra.backbone.parameters()]
    # other image sizes work too
    assert model(torch.as_tensor(_images(2, size=96)))["stop_sign"]["box"].shape == (2, 4)


def test_task_declarations_are_validated_and_round_trip():
    with pytest.raises(ValueError):
        TaskSpec("Bad-Name", "classification", ("a", "b"))
    with pytest.raises(ValueError):
        TaskSpec("x", "segmentation", ("a", "b"))
    with pytest.raises(ValueError):
        TaskSpec("x", "classification", ("a",))
    with pytest.raises(ValueError):
        TaskSpec("x", "detection", ())
    with pytest.raises(ValueError):
        tasks_mod.tasks_from_dicts([CAUTION.to_dict(), CAUTION.to_dict()])
    for t in (*DEFAULT_TASKS, CAUTION, LANDMARK):
        assert TaskSpec.from_dict(t.to_dict()) == t
    yaml_like = [{"name": "caution_lights", "prototype": "classification", "classes": ["off", "on"]}]
    assert tasks_mod.tasks_from_dicts(yaml_like)[0].outputs() == [("logits", 2)]


def test_task_from_label_store_declaration():
    from longtail.labels.v1 import labels_pb2

    proto = labels_pb2.Task(name="stop_sign", prototype=common_pb2.TASK_PROTOTYPE_DETECTION, classes=["stop_sign"])
    proto.attributes.add(name="occlusion", values=["none", "foliage"])
    spec = TaskSpec.from_proto(proto, object_size_m=1.8)
    assert spec.prototype == "detection" and spec.attributes == {"occlusion": ("none", "foliage")}


def test_predict_and_to_detections():
    torch.manual_seed(1)
    model = MultiTaskNet([*DEFAULT_TASKS, CAUTION], channels=TINY)
    preds = model.predict(_images(4))
    assert len(preds) == 4
    p = preds[0]["stop_sign"]
    assert 0.0 <= p["presence"] <= 1.0
    assert sum(p["class_scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert set(p["attributes"]) == {"occlusion", "mount", "modifier", "temporary"}
    assert sum(preds[0]["caution_lights"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    dets = to_detections(preds[0], min_confidence=0.0)
    assert [d.cls for d in dets] == ["stop_sign", "traffic_light"]  # classification tasks are not detections
    for d in dets:
        assert isinstance(d, common_pb2.Detection)
        assert 0.0 <= d.box.x_min <= d.box.x_max <= 1.0 and 0.0 <= d.box.y_min <= d.box.y_max <= 1.0
        assert set(d.attribute_scores) == set(d.attributes)
        assert d.HasField("bearing_rad")
    assert to_detections(preds[0], min_confidence=1.01) == []
    assert len(model.detect(_images(3), min_confidence=0.0)) == 3


def test_torchscript_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(2)
    model = MultiTaskNet([*DEFAULT_TASKS, CAUTION, LANDMARK], channels=TINY).eval()
    x = torch.as_tensor(_images(5))
    path = tmp_path / "model.pt"
    sha = torchscript.save(model, str(path))
    import hashlib

    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torchscript.to_bytes(model) == path.read_bytes()  # deterministic archive
    loaded = torchscript.load(str(path))
    scripted = torchscript.load_scripted(str(path))
    from_bytes = torchscript.from_bytes(path.read_bytes())
    assert isinstance(scripted.module, torch.jit.ScriptModule)
    ref = model(x)
    for other in (loaded(x), scripted.module(x), from_bytes(x)):
        for task in ref:
            for k in ref[task]:
                assert torch.equal(ref[task][k], other[task][k]), (task, k)
    assert torchscript.state_dict_sha256(loaded) == torchscript.state_dict_sha256(model)
    assert [t.to_dict() for t in loaded.tasks] == [t.to_dict() for t in model.tasks]
    assert scripted.predict(x.numpy()) == model.predict(x.numpy())
    # what the cars run: frozen, batch norm folded into the convolutions; equal within float error
    optimized = torchscript.load_scripted(str(path), optimize=True)
    fast = optimized.module(x)
    for task in ref:
        for k in ref[task]:
            assert torch.allclose(ref[task][k], fast[task][k], atol=1e-5), (task, k)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) or "batch_norm" not in str(optimized.module.graph)


def test_loss_masks_unlabelled_tasks_and_training_reduces_it():
    torch.manual_seed(3)
    tasks = [*DEFAULT_TASKS, CAUTION]
    model = MultiTaskNet(tasks, channels=TINY)
    images = _images(16)
    box = (0.4, 0.3, 0.5, 0.45)
    annotations = []
    for i in range(16):
        ann = {"traffic_light": []}
        if i % 2 == 0:
            ann["stop_sign"] = [{"cls": "stop_sign", "box": box, "attributes": {"occlusion": "foliage", "mount": "bogus"}}]
            images[i, 19:29, 25:32] = (200, 20, 20)
        else:
            ann["stop_sign"] = []
        if i % 4 == 0:
            ann["caution_lights"] = {"cls": "flashing", "attributes": {"colour": "amber"}}
        annotations.append(ann)
    targets = fitting.encode_targets(tasks, annotations)
    st = targets["stop_sign"]
    assert st["presence"].tolist() == [1.0, 0.0] * 8 and st["mask"].sum() == 16
    assert st["box"][0].tolist() == pytest.approx([0.45, 0.375, 0.1, 0.15])
    assert st["attr:occlusion"][0] == 1 and st["attr:mount"][0] == fitting.IGNORE  # undeclared value ignored
    assert targets["caution_lights"]["mask"].sum() == 4
    # no labels for a task in a batch -> no loss term for it
    raw = model(torch.as_tensor(images[1:2]))
    _, parts = fitting.compute_loss(tasks, raw, fitting._index_targets(targets, torch.tensor([1])))
    assert not any(k.startswith("caution_lights") for k in parts) and "stop_sign/box" not in parts
    history = fitting.fit(model, images, targets, epochs=6, batch_size=8, lr=1e-2, seed=0)
    assert history[-1]["total"] < history[0]["total"]


def test_detection_target_is_the_most_salient_instance():
    t = DEFAULT_TASKS[0]
    small = {"cls": "stop_sign", "box": (0.1, 0.1, 0.15, 0.15), "attributes": {"mount": "handheld"}}
    big = common_pb2.Detection(cls="stop_sign", box=common_pb2.BoundingBox(x_min=0.5, y_min=0.5, x_max=0.7, y_max=0.7))
    big.attributes["mount"] = "gate"
    other = {"cls": "red_round_sign", "box": (0.0, 0.0, 1.0, 1.0)}
    tg = fitting.encode_targets([t], [{"stop_sign": [small, big, other]}])["stop_sign"]
    assert tg["box"][0].tolist() == pytest.approx([0.6, 0.6, 0.2, 0.2])
    assert tg["attr:mount"][0] == 2


def test_a_branched_task_runs_its_own_last_blocks_and_survives_torchscript():
    branched = TaskSpec("caution_lights", "classification", ("off", "on"), branch_blocks=2)
    net = MultiTaskNet(list(DEFAULT_TASKS) + [branched], TINY).eval()
    assert net.taps == [8] and len(net.heads["caution_lights"].trunk) == 2 * LAYERS_PER_BLOCK
    plain = MultiTaskNet(list(DEFAULT_TASKS), TINY).eval()
    plain.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("heads.caution_lights.")})
    x = torch.as_tensor(_images(3))
    out, ref = net(x), plain(x)
    assert all(torch.equal(out[t][o], ref[t][o]) for t in ref for o in ref[t])  # the shared path is unchanged by a branch
    again = torchscript.from_bytes(torchscript.to_bytes(net))
    assert again.tasks[-1].branch_blocks == 2
    assert torch.equal(again(x)["caution_lights"]["logits"], out["caution_lights"]["logits"])
    with pytest.raises(ValueError, match="branch_blocks 5"):
        MultiTaskNet([TaskSpec("x", "classification", ("a", "b"), branch_blocks=5)], TINY)
    with pytest.raises(ValueError, match="branch_blocks must be an integer >= 0"):
        TaskSpec("x", "classification", ("a", "b"), branch_blocks=-1)
