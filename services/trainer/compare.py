"""Offline comparison of two model versions (`longtail models compare`, CompareModels).

Both versions run on the same frames — the samples of a dataset version (one split or all) and/or
the cases of unit-test suites — and every detection task's outputs are compared the way the cars
compare production and candidate in shadow mode (`ShadowDifferenceKind`): detected by one and not
the other (confidence >= 0.5), class changed, attribute changed, or boxes with IoU < 0.5.
Classification tasks count CLASS_CHANGED / ATTRIBUTE_CHANGED. What is not implemented yet: the
aggregation of the fleet's own shadow disagreements (fleet.shadow-disagreements.v1, `time_range`).
"""

from __future__ import annotations

import numpy as np

from longtail import model as model_mod
from longtail.models.v1 import trainer_pb2 as T

from trainer import data as data_mod

THRESHOLD = 0.5
MIN_IOU = 0.5


class CompareError(Exception):
    pass


def differences(tasks, prod: dict, cand: dict) -> list[tuple[str, str, str]]:
    """(kind, task, class) for every difference between two post-processed predictions of one image."""
    out = []
    for t in tasks:
        p, c = prod.get(t.name), cand.get(t.name)
        if p is None or c is None:
            continue
        if t.prototype == "detection":
            dp, dc = p["confidence"] >= THRESHOLD, c["confidence"] >= THRESHOLD
            if dp and not dc:
                out.append(("SHADOW_DIFFERENCE_KIND_MISSED_BY_CANDIDATE", t.name, p["cls"]))
            elif dc and not dp:
                out.append(("SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE", t.name, c["cls"]))
            elif dp and dc:
                if p["cls"] != c["cls"]:
                    out.append(("SHADOW_DIFFERENCE_KIND_CLASS_CHANGED", t.name, c["cls"]))
                elif p["attributes"] != c["attributes"]:
                    out.append(("SHADOW_DIFFERENCE_KIND_ATTRIBUTE_CHANGED", t.name, c["cls"]))
                elif model_mod.box_iou(p["box"], c["box"]) < MIN_IOU:
                    out.append(("SHADOW_DIFFERENCE_KIND_LOCALIZATION", t.name, c["cls"]))
        elif t.prototype == "classification":
            if p["cls"] != c["cls"]:
                out.append(("SHADOW_DIFFERENCE_KIND_CLASS_CHANGED", t.name, c["cls"]))
            elif p["attributes"] != c["attributes"]:
                out.append(("SHADOW_DIFFERENCE_KIND_ATTRIBUTE_CHANGED", t.name, c["cls"]))
    return out


def compare_on(prod_model, cand_model, images: np.ndarray, ids: list[str], limit: int = 20) -> T.CompareModelsResponse:
    shared = [t for t in cand_model.tasks if t in prod_model.tasks]
    resp = T.CompareModelsResponse(frames_compared=len(ids))
    if not ids:
        return resp
    pp, cp = prod_model.predict(images), cand_model.predict(images)
    for sid, a, b in zip(ids, pp, cp):
        diffs = differences(shared, a, b)
        if not diffs:
            continue
        resp.frames_disagreeing += 1
        if len(resp.sample_frame_ids) < limit:
            resp.sample_frame_ids.append(sid)
        for kind, task, cls in diffs:
            resp.by_kind[kind] += 1
            resp.by_task[task] += 1
            resp.by_class[cls] += 1
    resp.disagreement_rate = resp.frames_disagreeing / resp.frames_compared
    return resp


def compare(trainer, request: T.CompareModelsRequest) -> T.CompareModelsResponse:
    reg = trainer.registry
    prod = reg.get(request.production.name or request.candidate.name, request.production.version)
    cand = reg.get(request.candidate.name, request.candidate.version)
    for what, mv, ref in (("production", prod, request.production), ("candidate", cand, request.candidate)):
        if mv is None:
            raise CompareError(f"{what}: {ref.name}@{ref.version or 'production'} does not exist")
    models = [model_mod.from_bytes(trainer._get_object("", mv.weights_key)) for mv in (prod, cand)]
    if request.HasField("time_range"):
        raise CompareError("time_range: comparing fleet shadow-mode disagreements is not implemented yet; "
                           "give a dataset or suites for an offline comparison")
    ids: list[str] = []
    images = []
    sources = []
    if request.dataset.name:
        examples, used = trainer._load_datasets([request.dataset])
        if request.split:
            examples = [e for e in examples if e.split == request.split]
        if examples:
            images.append(data_mod.fetch_images(trainer._get_object, examples))
            ids += [e.sample_id for e in examples]
        sources.append(f"dataset:{used[0]['name']}@{used[0]['version']}/{request.split or 'all'}")
    if request.suites or not request.dataset.name:
        suites, case_images = trainer._suite_inputs(set())
        if request.suites:
            wanted = {c.sample_id for s in suites if s.name in set(request.suites) for c in s.cases}
            case_images = {k: v for k, v in case_images.items() if k in wanted}
        new = [k for k in sorted(case_images) if k not in set(ids)]
        if new:
            images.append(np.stack([case_images[k] for k in new]))
            ids += new
        sources.append("suites:" + (",".join(request.suites) or "all"))
    resp = compare_on(models[0], models[1], np.concatenate(images) if images else np.zeros((0, 64, 64, 3), np.uint8), ids,
                      request.sample_limit or 20)
    resp.source = "; ".join(sources)
    return resp
