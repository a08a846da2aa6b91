"""TrainerService (gRPC) over the Trainer and the Registry; operator auth on writes."""

from __future__ import annotations

import asyncio
import hashlib

import grpc

from longtail import access, model_repo, topics
from longtail.common.v1 import common_pb2 as C
from longtail.grpc_handlers import abort
from longtail.log import get_logger
from longtail.model import torchscript
from longtail.models.v1 import trainer_pb2 as T
from longtail.models.v1 import trainer_pb2_grpc

from trainer import compare
from trainer.gate import InvalidWaiver
from trainer.runner import Trainer

log = get_logger(__name__)


def _page(items: list, page_size: int, token: str) -> tuple[list, str]:
    start = int(token) if token.isdigit() else 0
    size = page_size if page_size > 0 else 100
    end = start + size
    return items[start:end], (str(end) if end < len(items) else "")


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, trainer: Trainer, read_evidence: compare.EvidenceReader | None = None) -> None:
        self.trainer = trainer
        self.read_evidence = read_evidence
        self.registry = trainer.registry

    async def _operator(self, context) -> str:
        """Who changes the registry (longtail.access checked their role before the call)."""
        return access.caller().subject

    async def StartRun(self, request, context):
        operator = await self._operator(context)
        try:
            run, existed = await asyncio.to_thread(self.trainer.submit, request.spec, request.run_id, "api")
        except (InvalidWaiver, ValueError) as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        log.info("run requested", run_id=run.run_id, operator=operator, existed=existed)
        return T.StartRunResponse(run=run, already_existed=existed)

    async def GetRun(self, request, context):
        run = self.trainer.get(request.run_id)
        if run is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"run {request.run_id!r} does not exist")
        return T.GetRunResponse(run=run)

    async def ListRuns(self, request, context):
        runs, token = _page(self.trainer.list(list(request.statuses)), request.page_size, request.page_token)
        return T.ListRunsResponse(runs=runs, next_page_token=token)

    async def ListModels(self, request, context):
        await self._model_name(context, request.name, "name")
        models = await asyncio.to_thread(self.registry.list, request.name)
        if request.states:
            models = [m for m in models if m.state in request.states]
        models.sort(key=lambda m: (m.created_at.ToNanoseconds(), m.model.version), reverse=True)
        page, token = _page(models, request.page_size, request.page_token)
        return T.ListModelsResponse(models=page, next_page_token=token)

    async def GetModel(self, request, context):
        await self._model_name(context, request.model.name, "model.name")
        mv = await asyncio.to_thread(self.registry.get, request.model.name, request.model.version)
        if mv is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"model {request.model.name}@{request.model.version or 'production'} does not exist")
        return T.GetModelResponse(model=mv)

    async def _model_name(self, context, name: str, field: str) -> None:
        """A model name that can be one (empty where the request allows it: all models)."""
        if not name and field == "name":
            return
        try:
            model_repo.check_name(name)
        except ValueError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {exc}")

    async def _announce(self, context, name: str, version: int, role: C.ModelRole, shadow_fraction: float = 0.0) -> T.ModelVersion | None:
        mv = await asyncio.to_thread(self.registry.get, name, version)
        if mv is None:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"model {name}@{version} does not exist")
        if mv.state == T.MODEL_STATE_REFUSED:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{name}@{version} was refused by the gate and was never published: " + "; ".join(mv.gate_report.reasons))
        if mv.kind == T.RUN_KIND_TRIGGER_DETECTOR:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{name}@{version} is a trigger detector, not a perception model")
        pv = await asyncio.to_thread(self.registry.published_version, name, version)
        event = model_repo.published_event(pv, role, self.trainer.store.bucket)
        event.shadow_fraction = shadow_fraction
        await asyncio.to_thread(self.trainer.publish_event, topics.MODELS_PUBLISHED, name, event)
        self.registry.on_published(name, event)
        return await asyncio.to_thread(self.registry.get, name, version)

    async def PromoteModel(self, request, context):
        operator = await self._operator(context)
        role = request.role or C.MODEL_ROLE_PRODUCTION
        if role not in (C.MODEL_ROLE_PRODUCTION, C.MODEL_ROLE_CANDIDATE):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "role: PRODUCTION or CANDIDATE")
        if request.model.version <= 0:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "model.version: a positive version is required")
        if not request.model.name or not request.model.name.isprintable() or "/" in request.model.name:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"model.name: {request.model.name[:80]!r} is not a model name (printable, no '/')")
        if not 0.0 <= request.shadow_fraction <= 1.0 or (request.shadow_fraction and role != C.MODEL_ROLE_CANDIDATE):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "shadow_fraction: in (0, 1], and only for a CANDIDATE")
        mv = await self._announce(context, request.model.name, request.model.version, role, request.shadow_fraction)
        log.info("model promoted", model=f"{request.model.name}@{request.model.version}", role=C.ModelRole.Name(role), operator=operator, reason=request.reason)
        return T.PromoteModelResponse(model=mv)

    async def RollbackModel(self, request, context):
        operator = await self._operator(context)
        current = self.registry.production(request.model_name)
        if current <= 0:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{request.model_name} has no PRODUCTION version")
        target = int(request.to_version) or self.registry.previous_production(request.model_name)
        if target <= 0:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{request.model_name}@{current} has no earlier PRODUCTION version to roll back to")
        if target == current:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{request.model_name}@{target} is already PRODUCTION")
        mv = await self._announce(context, request.model_name, target, C.MODEL_ROLE_PRODUCTION)
        log.info("model rolled back", model=request.model_name, to=target, rolled_back_from=current, operator=operator, reason=request.reason)
        return T.RollbackModelResponse(model=mv, rolled_back_from=C.ModelRef(name=request.model_name, version=current))

    async def ImportModel(self, request, context):
        operator = await self._operator(context)
        role = request.role or C.MODEL_ROLE_PRODUCTION
        try:
            model_repo.check_name(request.model_name)
        except ValueError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"model_name: {exc}")
        if role not in (C.MODEL_ROLE_PRODUCTION, C.MODEL_ROLE_CANDIDATE):
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "role: PRODUCTION or CANDIDATE")
        if not request.weights:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "weights: required (a TorchScript archive from longtail.model.torchscript.to_bytes)")
        try:
            model = await asyncio.to_thread(torchscript.from_bytes, request.weights)
        except Exception as exc:  # noqa: BLE001 - whatever torch says about a bad archive
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"weights: not a longtail model archive: {str(exc)[:300]}")
        current = self.registry.production(request.model_name)
        if current > 0:
            pv = await asyncio.to_thread(self.registry.published_version, request.model_name, current)
            if pv.sha256 != hashlib.sha256(await asyncio.to_thread(torchscript.to_bytes, model)).hexdigest():
                await abort(context, grpc.StatusCode.FAILED_PRECONDITION, f"{request.model_name} already has PRODUCTION version {current}: new versions of a line come from training runs through the gate")
            return T.ImportModelResponse(model=await asyncio.to_thread(self.registry.get, request.model_name, current), already_existed=True)
        version = self.registry.allocate(request.model_name)
        try:
            pv = await asyncio.to_thread(model_repo.publish, self.trainer.store, model, request.model_name, version, extra={"trainer": {"imported_by": operator, "reason": request.reason}})
        except ValueError as exc:  # the archive does not fit the serving layout
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"weights: {exc}")
        event = model_repo.published_event(pv, role, self.trainer.store.bucket)
        await asyncio.to_thread(self.trainer.publish_event, topics.MODELS_PUBLISHED, request.model_name, event)
        self.registry.on_published(request.model_name, event)
        log.info("model imported", model=f"{request.model_name}@{version}", role=C.ModelRole.Name(role), operator=operator, reason=request.reason)
        return T.ImportModelResponse(model=await asyncio.to_thread(self.registry.get, request.model_name, version))

    async def CompareModels(self, request, context):
        try:
            return await asyncio.to_thread(compare.compare, self.trainer, request, self.read_evidence)
        except compare.CompareRequestError as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except compare.CompareError as exc:
            await abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
