import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.common.v1 import common_pb2 as _common_pb2
from longtail.triggers.v1 import triggers_pb2 as _triggers_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ShadowDifferenceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SHADOW_DIFFERENCE_KIND_UNSPECIFIED: _ClassVar[ShadowDifferenceKind]
    SHADOW_DIFFERENCE_KIND_MISSED_BY_CANDIDATE: _ClassVar[ShadowDifferenceKind]
    SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE: _ClassVar[ShadowDifferenceKind]
    SHADOW_DIFFERENCE_KIND_CLASS_CHANGED: _ClassVar[ShadowDifferenceKind]
    SHADOW_DIFFERENCE_KIND_ATTRIBUTE_CHANGED: _ClassVar[ShadowDifferenceKind]
    SHADOW_DIFFERENCE_KIND_LOCALIZATION: _ClassVar[ShadowDifferenceKind]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_UNAUTHENTICATED: _ClassVar[ErrorCode]
    ERROR_CODE_PROTOCOL_VIOLATION: _ClassVar[ErrorCode]
    ERROR_CODE_LIMIT_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_RATE_LIMITED: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ARGUMENT: _ClassVar[ErrorCode]
SHADOW_DIFFERENCE_KIND_UNSPECIFIED: ShadowDifferenceKind
SHADOW_DIFFERENCE_KIND_MISSED_BY_CANDIDATE: ShadowDifferenceKind
SHADOW_DIFFERENCE_KIND_EXTRA_IN_CANDIDATE: ShadowDifferenceKind
SHADOW_DIFFERENCE_KIND_CLASS_CHANGED: ShadowDifferenceKind
SHADOW_DIFFERENCE_KIND_ATTRIBUTE_CHANGED: ShadowDifferenceKind
SHADOW_DIFFERENCE_KIND_LOCALIZATION: ShadowDifferenceKind
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_UNAUTHENTICATED: ErrorCode
ERROR_CODE_PROTOCOL_VIOLATION: ErrorCode
ERROR_CODE_LIMIT_EXCEEDED: ErrorCode
ERROR_CODE_RATE_LIMITED: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_INVALID_ARGUMENT: ErrorCode

class EdgeFire(_message.Message):
    __slots__ = ("trigger_id", "trigger_version", "fire_id", "score")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    trigger_version: int
    fire_id: str
    score: float
    def __init__(self, trigger_id: _Optional[str] = ..., trigger_version: _Optional[int] = ..., fire_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("frame_id", "vehicle_id", "sequence", "captured_at", "ego", "detections", "model", "shadow_detections", "shadow_model", "trigger_scores", "edge_fires")
    class TriggerScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    EGO_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MODEL_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_SCORES_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIRES_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    vehicle_id: str
    sequence: int
    captured_at: _timestamp_pb2.Timestamp
    ego: _common_pb2.Pose
    detections: _containers.RepeatedCompositeFieldContainer[_common_pb2.Detection]
    model: _common_pb2.ModelRef
    shadow_detections: _containers.RepeatedCompositeFieldContainer[_common_pb2.Detection]
    shadow_model: _common_pb2.ModelRef
    trigger_scores: _containers.ScalarMap[str, float]
    edge_fires: _containers.RepeatedCompositeFieldContainer[EdgeFire]
    def __init__(self, frame_id: _Optional[str] = ..., vehicle_id: _Optional[str] = ..., sequence: _Optional[int] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ego: _Optional[_Union[_common_pb2.Pose, _Mapping]] = ..., detections: _Optional[_Iterable[_Union[_common_pb2.Detection, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., shadow_detections: _Optional[_Iterable[_Union[_common_pb2.Detection, _Mapping]]] = ..., shadow_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., trigger_scores: _Optional[_Mapping[str, float]] = ..., edge_fires: _Optional[_Iterable[_Union[EdgeFire, _Mapping]]] = ...) -> None: ...

class FrameMetadata(_message.Message):
    __slots__ = ("ego", "detections", "model", "clip_frame_ids", "image_width", "image_height", "trigger_scores")
    class TriggerScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EGO_FIELD_NUMBER: _ClassVar[int]
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CLIP_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_SCORES_FIELD_NUMBER: _ClassVar[int]
    ego: _common_pb2.Pose
    detections: _containers.RepeatedCompositeFieldContainer[_common_pb2.Detection]
    model: _common_pb2.ModelRef
    clip_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    image_width: int
    image_height: int
    trigger_scores: _containers.ScalarMap[str, float]
    def __init__(self, ego: _Optional[_Union[_common_pb2.Pose, _Mapping]] = ..., detections: _Optional[_Iterable[_Union[_common_pb2.Detection, _Mapping]]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., clip_frame_ids: _Optional[_Iterable[str]] = ..., image_width: _Optional[int] = ..., image_height: _Optional[int] = ..., trigger_scores: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ShadowDifference(_message.Message):
    __slots__ = ("kind", "production", "candidate", "iou", "attribute")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    kind: ShadowDifferenceKind
    production: _common_pb2.Detection
    candidate: _common_pb2.Detection
    iou: float
    attribute: str
    def __init__(self, kind: _Optional[_Union[ShadowDifferenceKind, str]] = ..., production: _Optional[_Union[_common_pb2.Detection, _Mapping]] = ..., candidate: _Optional[_Union[_common_pb2.Detection, _Mapping]] = ..., iou: _Optional[float] = ..., attribute: _Optional[str] = ...) -> None: ...

class ShadowDisagreement(_message.Message):
    __slots__ = ("frame_id", "captured_at", "production", "candidate", "task", "differences", "frames_compared")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_COMPARED_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    captured_at: _timestamp_pb2.Timestamp
    production: _common_pb2.ModelRef
    candidate: _common_pb2.ModelRef
    task: str
    differences: _containers.RepeatedCompositeFieldContainer[ShadowDifference]
    frames_compared: int
    def __init__(self, frame_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., production: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., candidate: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., task: _Optional[str] = ..., differences: _Optional[_Iterable[_Union[ShadowDifference, _Mapping]]] = ..., frames_compared: _Optional[int] = ...) -> None: ...

class CarMessage(_message.Message):
    __slots__ = ("hello", "telemetry", "shadow_disagreement", "goodbye", "command_result", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    COMMAND_RESULT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    telemetry: TelemetryBatch
    shadow_disagreement: ShadowDisagreement
    goodbye: Goodbye
    command_result: CommandResult
    heartbeat: Heartbeat
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., telemetry: _Optional[_Union[TelemetryBatch, _Mapping]] = ..., shadow_disagreement: _Optional[_Union[ShadowDisagreement, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., command_result: _Optional[_Union[CommandResult, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("vehicle_id", "auth_token", "software_version", "shadow_model", "candidate_model", "active_triggers", "trigger_detectors", "last_sequence")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MODEL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_MODEL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_DETECTORS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    auth_token: str
    software_version: str
    shadow_model: _common_pb2.ModelRef
    candidate_model: _common_pb2.ModelRef
    active_triggers: _containers.RepeatedCompositeFieldContainer[_triggers_pb2.TriggerRef]
    trigger_detectors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ModelRef]
    last_sequence: int
    def __init__(self, vehicle_id: _Optional[str] = ..., auth_token: _Optional[str] = ..., software_version: _Optional[str] = ..., shadow_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., candidate_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., active_triggers: _Optional[_Iterable[_Union[_triggers_pb2.TriggerRef, _Mapping]]] = ..., trigger_detectors: _Optional[_Iterable[_Union[_common_pb2.ModelRef, _Mapping]]] = ..., last_sequence: _Optional[int] = ...) -> None: ...

class TelemetryBatch(_message.Message):
    __slots__ = ("batch_seq", "frames")
    BATCH_SEQ_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    batch_seq: int
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    def __init__(self, batch_seq: _Optional[int] = ..., frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sent_at",)
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    sent_at: _timestamp_pb2.Timestamp
    def __init__(self, sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("command_id", "ok", "message")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    ok: bool
    message: str
    def __init__(self, command_id: _Optional[str] = ..., ok: _Optional[bool] = ..., message: _Optional[str] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class ServerMessage(_message.Message):
    __slots__ = ("welcome", "ack", "command", "error")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    ack: Ack
    command: Command
    error: Error
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class SessionLimits(_message.Message):
    __slots__ = ("max_batch_frames", "max_snapshot_bytes", "max_chunk_bytes", "max_batches_per_second")
    MAX_BATCH_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_SNAPSHOT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCHES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    max_batch_frames: int
    max_snapshot_bytes: int
    max_chunk_bytes: int
    max_batches_per_second: float
    def __init__(self, max_batch_frames: _Optional[int] = ..., max_snapshot_bytes: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., max_batches_per_second: _Optional[float] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session_id", "server_time", "heartbeat_interval", "limits", "gateway_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    server_time: _timestamp_pb2.Timestamp
    heartbeat_interval: _duration_pb2.Duration
    limits: SessionLimits
    gateway_id: str
    def __init__(self, session_id: _Optional[str] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., limits: _Optional[_Union[SessionLimits, _Mapping]] = ..., gateway_id: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("batch_seq", "frames_accepted", "frames_rejected")
    BATCH_SEQ_FIELD_NUMBER: _ClassVar[int]
    FRAMES_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_REJECTED_FIELD_NUMBER: _ClassVar[int]
    batch_seq: int
    frames_accepted: int
    frames_rejected: int
    def __init__(self, batch_seq: _Optional[int] = ..., frames_accepted: _Optional[int] = ..., frames_rejected: _Optional[int] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("command_id", "issued_at", "expires_at", "activate_trigger", "retire_trigger", "update_shadow_model", "update_trigger_model", "request_upload")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    RETIRE_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_SHADOW_MODEL_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TRIGGER_MODEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_UPLOAD_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    activate_trigger: ActivateTrigger
    retire_trigger: RetireTrigger
    update_shadow_model: UpdateShadowModel
    update_trigger_model: UpdateTriggerModel
    request_upload: RequestUpload
    def __init__(self, command_id: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activate_trigger: _Optional[_Union[ActivateTrigger, _Mapping]] = ..., retire_trigger: _Optional[_Union[RetireTrigger, _Mapping]] = ..., update_shadow_model: _Optional[_Union[UpdateShadowModel, _Mapping]] = ..., update_trigger_model: _Optional[_Union[UpdateTriggerModel, _Mapping]] = ..., request_upload: _Optional[_Union[RequestUpload, _Mapping]] = ...) -> None: ...

class ActivateTrigger(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: _triggers_pb2.Trigger
    def __init__(self, trigger: _Optional[_Union[_triggers_pb2.Trigger, _Mapping]] = ...) -> None: ...

class RetireTrigger(_message.Message):
    __slots__ = ("trigger_id", "reason")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    reason: str
    def __init__(self, trigger_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateShadowModel(_message.Message):
    __slots__ = ("model", "role", "uri", "sha256", "size_bytes", "weights")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    role: _common_pb2.ModelRole
    uri: str
    sha256: str
    size_bytes: int
    weights: bytes
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., role: _Optional[_Union[_common_pb2.ModelRole, str]] = ..., uri: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., weights: _Optional[bytes] = ...) -> None: ...

class UpdateTriggerModel(_message.Message):
    __slots__ = ("detector_name", "model", "uri", "sha256", "size_bytes", "weights")
    DETECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    detector_name: str
    model: _common_pb2.ModelRef
    uri: str
    sha256: str
    size_bytes: int
    weights: bytes
    def __init__(self, detector_name: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., uri: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., weights: _Optional[bytes] = ...) -> None: ...

class RequestUpload(_message.Message):
    __slots__ = ("frame_id", "trigger_id", "trigger_version", "fire_id", "capture_window", "deadline", "priority")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    trigger_id: str
    trigger_version: int
    fire_id: str
    capture_window: _triggers_pb2.CaptureWindow
    deadline: _timestamp_pb2.Timestamp
    priority: int
    def __init__(self, frame_id: _Optional[str] = ..., trigger_id: _Optional[str] = ..., trigger_version: _Optional[int] = ..., fire_id: _Optional[str] = ..., capture_window: _Optional[_Union[_triggers_pb2.CaptureWindow, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., priority: _Optional[int] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "fatal", "batch_seq", "field")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FATAL_FIELD_NUMBER: _ClassVar[int]
    BATCH_SEQ_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    fatal: bool
    batch_seq: int
    field: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ..., fatal: _Optional[bool] = ..., batch_seq: _Optional[int] = ..., field: _Optional[str] = ...) -> None: ...

class SnapshotHeader(_message.Message):
    __slots__ = ("vehicle_id", "auth_token", "frame_id", "trigger_id", "trigger_version", "fire_id", "sha256", "size_bytes", "content_type", "captured_at", "metadata")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    auth_token: str
    frame_id: str
    trigger_id: str
    trigger_version: int
    fire_id: str
    sha256: str
    size_bytes: int
    content_type: str
    captured_at: _timestamp_pb2.Timestamp
    metadata: FrameMetadata
    def __init__(self, vehicle_id: _Optional[str] = ..., auth_token: _Optional[str] = ..., frame_id: _Optional[str] = ..., trigger_id: _Optional[str] = ..., trigger_version: _Optional[int] = ..., fire_id: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., content_type: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., metadata: _Optional[_Union[FrameMetadata, _Mapping]] = ...) -> None: ...

class UploadSnapshotRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SnapshotHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SnapshotHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadSnapshotResponse(_message.Message):
    __slots__ = ("snapshot_id", "object_key", "bucket", "size_bytes", "already_existed")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    object_key: str
    bucket: str
    size_bytes: int
    already_existed: bool
    def __init__(self, snapshot_id: _Optional[str] = ..., object_key: _Optional[str] = ..., bucket: _Optional[str] = ..., size_bytes: _Optional[int] = ..., already_existed: _Optional[bool] = ...) -> None: ...

class PublishTelemetryRequest(_message.Message):
    __slots__ = ("vehicle_id", "auth_token", "frame")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    AUTH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    auth_token: str
    frame: Frame
    def __init__(self, vehicle_id: _Optional[str] = ..., auth_token: _Optional[str] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ...) -> None: ...

class PublishTelemetryResponse(_message.Message):
    __slots__ = ("accepted", "frame_id")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    frame_id: str
    def __init__(self, accepted: _Optional[bool] = ..., frame_id: _Optional[str] = ...) -> None: ...
