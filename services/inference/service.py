"""InferenceService (gRPC, asyncio): score one image on Triton, and say which version serves.

Inference runs on a thread pool (the tritonclient calls block); concurrent calls reach Triton
concurrently and its dynamic batcher merges them into one forward pass.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from minio.error import S3Error

from longtail.grpc_handlers import abort
from longtail.inference.v1 import inference_pb2, inference_pb2_grpc
from longtail.log import get_logger
from longtail.snapshots import MAX_IMAGE_BYTES, BadImage, decode_image, decode_snapshot
from longtail.storage import SNAPSHOTS, content_key

from inference.serving import ModelManager, NotServing
from inference.worker import score

log = get_logger(__name__)
SNAPSHOT_SUFFIXES = (".png", ".tar", ".jpg")  # as the gateway stores them


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, manager: ModelManager, store, threads: int = 16) -> None:
        self.manager = manager
        self.store = store
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="inference-grpc")

    def _snapshot(self, snapshot_id: str):
        for suffix in SNAPSHOT_SUFFIXES:
            key = content_key(SNAPSHOTS, snapshot_id, suffix)
            try:
                data = self.store.get(key)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    continue
                raise
            return decode_snapshot(data, {".png": "image/png", ".tar": "application/x-tar", ".jpg": "image/jpeg"}[suffix])
        return None

    def _run(self, request: inference_pb2.InferRequest):
        with self.manager.lease(request.model.version) as mv:
            unknown = sorted(set(request.tasks) - {t.name for t in mv.tasks})
            if unknown:
                raise ValueError(f"unknown task(s) {unknown}; {mv.name}@{mv.version} has {[t.name for t in mv.tasks]}")
            if request.WhichOneof("input") == "snapshot_id":
                try:
                    image = self._snapshot(request.snapshot_id)
                except ValueError as exc:
                    raise ValueError(f"snapshot_id: {exc}") from None
                if image is None:
                    raise LookupError(f"no snapshot {request.snapshot_id}")
            else:
                image = decode_image(request.image)
            started = time.perf_counter()
            ran, preds, _ = score(self.manager, [image], "grpc", only=request.tasks, version=mv.version)
            return ran, preds[0], time.perf_counter() - started

    async def Infer(self, request: inference_pb2.InferRequest, context: grpc.aio.ServicerContext) -> inference_pb2.InferResponse:
        if request.model.name and request.model.name != self.manager.name:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"this service serves {self.manager.name!r}, not {request.model.name!r}")
        which = request.WhichOneof("input")
        if which is None:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "snapshot_id or image is required")
        if which == "image" and len(request.image) > MAX_IMAGE_BYTES:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"image is larger than {MAX_IMAGE_BYTES} bytes")
        if request.model.version < 0:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, "model.version must be >= 0")
        try:
            ran, preds, elapsed = await asyncio.get_running_loop().run_in_executor(self._pool, self._run, request)
        except NotServing as exc:
            code = grpc.StatusCode.FAILED_PRECONDITION if request.model.version else grpc.StatusCode.UNAVAILABLE
            await abort(context, code, str(exc))
        except LookupError as exc:
            await abort(context, grpc.StatusCode.NOT_FOUND, str(exc))
        except (BadImage, ValueError) as exc:
            await abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        response = inference_pb2.InferResponse(model=ran.ref, predictions=preds)
        response.latency.FromNanoseconds(int(elapsed * 1e9))
        return response

    async def GetServingModel(self, request: inference_pb2.GetServingModelRequest, context: grpc.aio.ServicerContext) -> inference_pb2.GetServingModelResponse:
        if request.model_name and request.model_name != self.manager.name:
            await abort(context, grpc.StatusCode.NOT_FOUND, f"this service serves {self.manager.name!r}, not {request.model_name!r}")
        current, loaded_at = self.manager.current, self.manager.loaded_at
        if current is None or loaded_at is None:  # set together (ModelManager.apply)
            await abort(context, grpc.StatusCode.UNAVAILABLE, f"no version of {self.manager.name} is served yet")
        response = inference_pb2.GetServingModelResponse(model=current.ref, tasks=[t.name for t in current.tasks], loaded=[m.ref for m in self.manager.loaded()])
        response.loaded_at.FromNanoseconds(int(loaded_at * 1e9))
        return response

    def close(self) -> None:
        self._pool.shutdown(wait=False)
