"""Comparing two model versions (`longtail models compare`, CompareModels), on two kinds of evidence:

- offline: both versions run on the same frames -- the samples of a dataset version (one split or
  all) and/or the cases of unit-test suites;
- fleet: what the cars running the candidate in shadow mode reported on
  fleet.shadow-disagreements.v1 over a time range (`time_range`).

Both count differences with one definition (`longtail.shadow.differences`): detected by one and
not the other (confidence >= 0.5), class changed, attribute changed, or boxes with IoU < 0.5.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from longtail import shadow
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.model import torchscript
from longtail.models.v1 import trainer_pb2 as T

from trainer import data as data_mod

DEFAULT_SAMPLE = 20

# (since_ms, until_ms) -> the ShadowDisagreementEvents recorded in that range
EvidenceReader = Callable[[int, int], Iterable[fleet_events.ShadowDisagreementEvent]]


class CompareError(Exception):
    """The comparison cannot run in the current state (FAILED_PRECONDITION)."""


class CompareRequestError(CompareError):
    """The request itself is malformed (INVALID_ARGUMENT)."""


def differences(tasks, prod: dict, cand: dict) -> list[tuple[str, str, str]]:
    """(kind, task, class) for every difference between two post-processed predictions of one image."""
    return [(shadow.kind_name(d), task, shadow.difference_class(d)) for task, d in shadow.differences(tasks, prod, cand)]


def compare_on(prod_model, cand_model, images: np.ndarray, ids: list[str], limit: int = DEFAULT_SAMPLE) -> T.CompareModelsResponse:
    shared = shadow.shared_tasks(prod_model.tasks, cand_model.tasks)
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


def compare(trainer, request: T.CompareModelsRequest, read_evidence: EvidenceReader | None = None) -> T.CompareModelsResponse:
    reg = trainer.registry
    cand = reg.get(request.candidate.name, request.candidate.version)
    if cand is None:
        raise CompareError(f"candidate: {request.candidate.name}@{request.candidate.version or 'production'} does not exist")
    if request.HasField("time_range"):
        if read_evidence is None:
            raise CompareError("time_range: this trainer has no access to fleet.shadow-disagreements.v1")
        if request.dataset.name or request.suites:
            raise CompareRequestError("give either time_range (fleet evidence) or a dataset/suites (offline), not both")
        return fleet_compare(request.production, cand.model, request, read_evidence)
    prod = reg.get(request.production.name or request.candidate.name, request.production.version)
    if prod is None:
        raise CompareError(f"production: {request.production.name or request.candidate.name}@{request.production.version or 'production'} does not exist")
    models = [torchscript.from_bytes(trainer._get_object("", mv.weights_key)) for mv in (prod, cand)]
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
    resp = compare_on(models[0], models[1], np.concatenate(images) if images else np.zeros((0, 64, 64, 3), np.uint8), ids, request.sample_limit or DEFAULT_SAMPLE)
    resp.source = "; ".join(sources)
    return resp


def fleet_compare(production, candidate, request: T.CompareModelsRequest, read_evidence: EvidenceReader) -> T.CompareModelsResponse:
    """Aggregate the cars' shadow-mode reports of `candidate` next to `production` (ModelRefs; a
    production version 0 matches whatever version of that line the cars ran beside the candidate)."""
    r = request.time_range
    since = r.since.ToMilliseconds() if r.HasField("since") else 0
    until = r.until.ToMilliseconds() if r.HasField("until") else 2**62
    if until <= since:
        raise CompareRequestError("time_range.until must be after time_range.since")
    limit = request.sample_limit or DEFAULT_SAMPLE
    resp = T.CompareModelsResponse()
    vehicles: set[str] = set()
    disagreeing: set[tuple[str, str]] = set()
    for e in read_evidence(since, until):
        if (e.candidate.name, e.candidate.version) != (candidate.name, candidate.version):
            continue
        if production.name and e.production.name != production.name or production.version and e.production.version != production.version:
            continue
        vehicles.add(e.vehicle_id)
        resp.frames_compared += e.frames_compared
        if not e.differences:
            continue
        frame = (e.vehicle_id, e.frame_id)
        if frame not in disagreeing:
            disagreeing.add(frame)
            if len(resp.sample_frame_ids) < limit:
                resp.sample_frame_ids.append(e.frame_id)
        for d in e.differences:
            resp.by_kind[shadow.kind_name(d)] += 1
            resp.by_task[e.task] += 1
            resp.by_class[shadow.difference_class(d)] += 1
    resp.frames_disagreeing = len(disagreeing)
    resp.distinct_vehicles = len(vehicles)
    resp.disagreement_rate = resp.frames_disagreeing / resp.frames_compared if resp.frames_compared else 0.0
    beside = f"{production.name or 'production'}@{production.version or 'any'}"
    resp.source = f"fleet shadow mode: {candidate.name}@{candidate.version} beside {beside}, {len(vehicles)} cars"
    return resp
