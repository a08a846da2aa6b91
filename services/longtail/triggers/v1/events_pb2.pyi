import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.triggers.v1 import triggers_pb2 as _triggers_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FireSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIRE_SOURCE_UNSPECIFIED: _ClassVar[FireSource]
    FIRE_SOURCE_EDGE: _ClassVar[FireSource]
    FIRE_SOURCE_FLEET: _ClassVar[FireSource]
    FIRE_SOURCE_MAP_VISION: _ClassVar[FireSource]
FIRE_SOURCE_UNSPECIFIED: FireSource
FIRE_SOURCE_EDGE: FireSource
FIRE_SOURCE_FLEET: FireSource
FIRE_SOURCE_MAP_VISION: FireSource

class TriggerRecord(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: _triggers_pb2.Trigger
    def __init__(self, trigger: _Optional[_Union[_triggers_pb2.Trigger, _Mapping]] = ...) -> None: ...

class TriggerFired(_message.Message):
    __slots__ = ("fire_id", "trigger_id", "trigger_version", "vehicle_id", "frame_id", "fired_at", "source", "dedup_key", "score", "upload_requested", "suppressed_reason")
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    FIRED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DEDUP_KEY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_REASON_FIELD_NUMBER: _ClassVar[int]
    fire_id: str
    trigger_id: str
    trigger_version: int
    vehicle_id: str
    frame_id: str
    fired_at: _timestamp_pb2.Timestamp
    source: FireSource
    dedup_key: str
    score: float
    upload_requested: bool
    suppressed_reason: str
    def __init__(self, fire_id: _Optional[str] = ..., trigger_id: _Optional[str] = ..., trigger_version: _Optional[int] = ..., vehicle_id: _Optional[str] = ..., frame_id: _Optional[str] = ..., fired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[FireSource, str]] = ..., dedup_key: _Optional[str] = ..., score: _Optional[float] = ..., upload_requested: _Optional[bool] = ..., suppressed_reason: _Optional[str] = ...) -> None: ...

class YieldUpdate(_message.Message):
    __slots__ = ("trigger_yield",)
    TRIGGER_YIELD_FIELD_NUMBER: _ClassVar[int]
    trigger_yield: _triggers_pb2.TriggerYield
    def __init__(self, trigger_yield: _Optional[_Union[_triggers_pb2.TriggerYield, _Mapping]] = ...) -> None: ...
