"""tasks.yaml: the declared tasks are the shared model's; a new declaration gets a head that trains."""

from __future__ import annotations

import pytest
import torch

from longtail import tasks as tasks_mod
from longtail.common.v1 import common_pb2 as C
from longtail.model import fitting, torchscript
from longtail.model.network import MultiTaskNet

from trainer import data as data_mod
from trainer import training

CAUTION = """
tasks:
  - name: stop_sign
    prototype: detection
    classes: [stop_sign]
    attributes: {occlusion: [none, foliage], mount: [pole, handheld, gate], modifier: [none, except_right_turn], temporary: ["false", "true"]}
    object_size_m: 1.8
  - name: traffic_light
    prototype: detection
    classes: [traffic_light]
    attributes: {light_state: [red, yellow, green]}
    object_size_m: 2.2
  - name: caution_lights_on
    prototype: classification
    classes: ["off", "on"]
    suite: {name: caution_lights_on.regressions, predicate: "any(d.cls == on and d.conf >= 0.5)"}
"""


def test_repository_tasks_are_the_shared_model_tasks():
    assert [t.spec for t in tasks_mod.load()] == list(tasks_mod.DEFAULT_TASKS)


def test_bad_declarations_name_the_problem():
    with pytest.raises(tasks_mod.TaskFileError, match=r"tasks\[0\].*at least two classes"):
        tasks_mod.parse("tasks: [{name: x, prototype: classification, classes: [a]}]")
    with pytest.raises(tasks_mod.TaskFileError, match="unknown key"):
        tasks_mod.parse("tasks: [{name: x, prototype: detection, classes: [a], colour: red}]")


def test_a_declared_task_gets_a_head_a_label_schema_and_a_suite_and_trains():
    declared = tasks_mod.parse(CAUTION)
    caution = declared[2]
    lt = tasks_mod.label_store_task(caution)
    assert lt.prototype == C.TASK_PROTOTYPE_CLASSIFICATION and list(lt.classes) == ["off", "on"]
    from label_store.suites import parse as parse_suite

    suite = parse_suite(tasks_mod.default_suite_yaml(caution))
    assert suite.name == "caution_lights_on.regressions" and suite.task == "caution_lights_on"

    torch.manual_seed(0)
    base = MultiTaskNet(tasks_mod.DEFAULT_TASKS)
    model, fresh = training.build_model([d.spec for d in declared], base, seed=0)
    assert fresh == ["caution_lights_on"] and "caution_lights_on" in model.heads
    assert torch.equal(model.state_dict()["backbone.0.weight"], base.state_dict()["backbone.0.weight"])  # from production
    assert torch.equal(model.state_dict()["heads.stop_sign.out.weight"], base.state_dict()["heads.stop_sign.out.weight"])

    split = data_mod.generated([d.spec for d in declared], 120, seed=0, world="common")["train"]
    # a learnable rule for the new task: "on" when a traffic light is in the labels
    for a in split.annotations:
        a["caution_lights_on"] = "on" if a.get("traffic_light") else "off"
    history = training.train(model, split, epochs=4, batch_size=32, lr=3e-3, seed=0)
    assert history[-1]["caution_lights_on/class"] < history[0]["caution_lights_on/class"]
    pred = model.predict(split.images[:2])[0]["caution_lights_on"]
    assert set(pred["probabilities"]) == {"off", "on"}

    # the new head alone: every other tensor (batch-norm statistics too) comes out as it went in
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training.train(model, split, epochs=2, batch_size=32, lr=3e-3, seed=1, only_heads=["caution_lights_on"])
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("heads.caution_lights_on."))
    assert not all(torch.equal(after[k], v) for k, v in before.items() if k.startswith("heads.caution_lights_on."))
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="no such head"):
        training.train(model, split, epochs=1, batch_size=32, lr=3e-3, seed=1, only_heads=["nope"])


def test_a_new_task_with_a_branch_starts_from_the_shared_blocks_and_moves_nothing_else():
    declared = [d.spec for d in tasks_mod.parse(CAUTION)]
    torch.manual_seed(0)
    base = MultiTaskNet(tasks_mod.DEFAULT_TASKS).eval()
    model, fresh = training.build_model(declared, base, seed=0, branch_blocks=2)
    assert fresh == ["caution_lights_on"] and model.tasks[-1].branch_blocks == 2
    own, theirs = model.state_dict(), base.state_dict()
    assert torch.equal(own["heads.caution_lights_on.trunk.0.weight"], theirs["backbone.8.weight"])  # the copy of block 3
    assert torch.equal(own["heads.caution_lights_on.trunk.5.running_mean"], theirs["backbone.13.running_mean"])

    split = data_mod.generated(declared, 96, seed=0, world="common")["train"]
    for a in split.annotations:
        a["caution_lights_on"] = "on" if a.get("traffic_light") else "off"
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training.train(model, split, epochs=2, batch_size=32, lr=5e-3, seed=1, only_heads=["caution_lights_on"])
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("heads.caution_lights_on."))
    assert not torch.equal(after["heads.caution_lights_on.trunk.0.weight"], before["heads.caution_lights_on.trunk.0.weight"])
    x = torch.as_tensor(split.images[:4])
    assert all(torch.equal(model(x)[t][o], base(x)[t][o]) for t in ("stop_sign", "traffic_light") for o in base(x)[t])

    # retrained later from that version, the task keeps its branch (the declaration does not name it)
    again, fresh = training.build_model(declared, model, seed=1)
    assert fresh == [] and again.tasks[-1].branch_blocks == 2


def test_training_is_reproducible_for_a_seed():
    tasks = list(tasks_mod.DEFAULT_TASKS)
    split = data_mod.generated(tasks, 96, seed=0, world="common")["train"]
    digests = []
    for seed in (5, 5, 6):
        m, _ = training.build_model(tasks, None, seed)
        training.train(m, split, epochs=1, batch_size=32, lr=2e-3, seed=seed)
        digests.append(torchscript.state_dict_sha256(m))
    assert digests[0] == digests[1] != digests[2]


def test_manifest_annotations_become_targets():
    stop, tl = tasks_mod.DEFAULT_TASKS
    out = {"detection": {"detections": [{"cls": "stop_sign", "box": {"x_max": 0.5, "y_min": 0.1, "y_max": 0.4}, "attributes": {"occlusion": "foliage"}}]}}
    ann = data_mod.annotation_for(stop, out)
    assert ann == [{"cls": "stop_sign", "box": (0.0, 0.1, 0.5, 0.4), "attributes": {"occlusion": "foliage"}}]
    assert data_mod.annotation_for(tl, {"detection": {}}) == []  # "nothing there" is a label
    t = fitting.encode_targets([stop], [{"stop_sign": ann}])["stop_sign"]
    assert t["presence"][0] == 1 and t["attr:occlusion"][0] == 1
    cls = tasks_mod.TaskSpec("c", "classification", ("off", "on"))
    assert data_mod.annotation_for(cls, {"classification": {"cls": "on"}}) == {"cls": "on", "attributes": {}}
