"""Every service of the system, once: its name (the chart, the consumer group, the label on its
metrics and logs), its Python package (`python -m <package>`) and the gRPC service its health
check and readiness probes name, taken from the generated descriptors, never typed out.

Imports only the generated messages (`*_pb2`), not grpc: the gateway must set GRPC_EXPERIMENTS
before grpc is first imported, and it reads its own entry here.
"""

from __future__ import annotations

from dataclasses import dataclass

from longtail.fleet.v1 import fleet_pb2
from longtail.inference.v1 import inference_pb2
from longtail.labels.v1 import labels_pb2
from longtail.mapvision.v1 import mapvision_pb2
from longtail.models.v1 import trainer_pb2
from longtail.triggers.v1 import triggers_pb2


@dataclass(frozen=True)
class Service:
    name: str  # "label-store": chart, consumer group, metrics and log label
    package: str  # "label_store": run with `python -m label_store` (`longtail serve label-store`)
    grpc: str  # the full name of its gRPC service (LabelStoreService of longtail.labels.v1): what health checks and probes name


def _grpc(module, service: str) -> str:
    return module.DESCRIPTOR.services_by_name[service].full_name


GATEWAY = Service("gateway", "gateway", _grpc(fleet_pb2, "FleetGatewayService"))
TRIGGER_EVALUATOR = Service("trigger-evaluator", "trigger_evaluator", _grpc(triggers_pb2, "TriggerCatalogService"))
MAP_VISION = Service("map-vision", "map_vision", _grpc(mapvision_pb2, "MapVisionService"))
LABEL_STORE = Service("label-store", "label_store", _grpc(labels_pb2, "LabelStoreService"))
INFERENCE = Service("inference", "inference", _grpc(inference_pb2, "InferenceService"))
TRAINER = Service("trainer", "trainer", _grpc(trainer_pb2, "TrainerService"))

SERVICES: dict[str, Service] = {s.name: s for s in (GATEWAY, TRIGGER_EVALUATOR, MAP_VISION, LABEL_STORE, INFERENCE, TRAINER)}
