import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.common.v1 import common_pb2 as _common_pb2
from longtail.models.v1 import trainer_pb2 as _trainer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelPublished(_message.Message):
    __slots__ = ("model", "role", "detector_name", "bucket", "repository_prefix", "config_key", "weights_key", "sha256", "size_bytes", "manifest_key", "tasks", "parent", "run_id", "published_at", "shadow_fraction")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CONFIG_KEY_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_KEY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    role: _common_pb2.ModelRole
    detector_name: str
    bucket: str
    repository_prefix: str
    config_key: str
    weights_key: str
    sha256: str
    size_bytes: int
    manifest_key: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    parent: _common_pb2.ModelRef
    run_id: str
    published_at: _timestamp_pb2.Timestamp
    shadow_fraction: float
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., role: _Optional[_Union[_common_pb2.ModelRole, str]] = ..., detector_name: _Optional[str] = ..., bucket: _Optional[str] = ..., repository_prefix: _Optional[str] = ..., config_key: _Optional[str] = ..., weights_key: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., manifest_key: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., parent: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., run_id: _Optional[str] = ..., published_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., shadow_fraction: _Optional[float] = ...) -> None: ...

class ModelRefused(_message.Message):
    __slots__ = ("model", "gate_report", "run_id", "refused_at", "refused_by", "reason")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GATE_REPORT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REFUSED_AT_FIELD_NUMBER: _ClassVar[int]
    REFUSED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    gate_report: _trainer_pb2.GateReport
    run_id: str
    refused_at: _timestamp_pb2.Timestamp
    refused_by: str
    reason: str
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., gate_report: _Optional[_Union[_trainer_pb2.GateReport, _Mapping]] = ..., run_id: _Optional[str] = ..., refused_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refused_by: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
