import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.common.v1 import common_pb2 as _common_pb2
from longtail.fleet.v1 import fleet_pb2 as _fleet_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TelemetryBatchEvent(_message.Message):
    __slots__ = ("vehicle_id", "gateway_id", "session_id", "batch_seq", "received_at", "frames")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SEQ_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    gateway_id: str
    session_id: str
    batch_seq: int
    received_at: _timestamp_pb2.Timestamp
    frames: _containers.RepeatedCompositeFieldContainer[_fleet_pb2.Frame]
    def __init__(self, vehicle_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., session_id: _Optional[str] = ..., batch_seq: _Optional[int] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., frames: _Optional[_Iterable[_Union[_fleet_pb2.Frame, _Mapping]]] = ...) -> None: ...

class SnapshotUploaded(_message.Message):
    __slots__ = ("snapshot_id", "vehicle_id", "frame_id", "trigger_id", "trigger_version", "fire_id", "captured_at", "uploaded_at", "object_key", "bucket", "size_bytes", "content_type", "metadata", "priority")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_AT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    vehicle_id: str
    frame_id: str
    trigger_id: str
    trigger_version: int
    fire_id: str
    captured_at: _timestamp_pb2.Timestamp
    uploaded_at: _timestamp_pb2.Timestamp
    object_key: str
    bucket: str
    size_bytes: int
    content_type: str
    metadata: _fleet_pb2.FrameMetadata
    priority: int
    def __init__(self, snapshot_id: _Optional[str] = ..., vehicle_id: _Optional[str] = ..., frame_id: _Optional[str] = ..., trigger_id: _Optional[str] = ..., trigger_version: _Optional[int] = ..., fire_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uploaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., object_key: _Optional[str] = ..., bucket: _Optional[str] = ..., size_bytes: _Optional[int] = ..., content_type: _Optional[str] = ..., metadata: _Optional[_Union[_fleet_pb2.FrameMetadata, _Mapping]] = ..., priority: _Optional[int] = ...) -> None: ...

class ShadowDisagreementEvent(_message.Message):
    __slots__ = ("vehicle_id", "frame_id", "captured_at", "received_at", "production", "candidate", "task", "differences", "frames_compared")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_COMPARED_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    frame_id: str
    captured_at: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    production: _common_pb2.ModelRef
    candidate: _common_pb2.ModelRef
    task: str
    differences: _containers.RepeatedCompositeFieldContainer[_fleet_pb2.ShadowDifference]
    frames_compared: int
    def __init__(self, vehicle_id: _Optional[str] = ..., frame_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., production: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., candidate: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., task: _Optional[str] = ..., differences: _Optional[_Iterable[_Union[_fleet_pb2.ShadowDifference, _Mapping]]] = ..., frames_compared: _Optional[int] = ...) -> None: ...

class VehicleCommand(_message.Message):
    __slots__ = ("vehicle_id", "command", "expires_at", "issued_by")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ISSUED_BY_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    command: _fleet_pb2.Command
    expires_at: _timestamp_pb2.Timestamp
    issued_by: str
    def __init__(self, vehicle_id: _Optional[str] = ..., command: _Optional[_Union[_fleet_pb2.Command, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., issued_by: _Optional[str] = ...) -> None: ...
