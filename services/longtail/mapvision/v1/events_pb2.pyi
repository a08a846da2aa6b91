import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.common.v1 import common_pb2 as _common_pb2
from longtail.mapvision.v1 import map_pb2 as _map_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_CHANGE_UNSPECIFIED: _ClassVar[FeatureChange]
    FEATURE_CHANGE_CREATED: _ClassVar[FeatureChange]
    FEATURE_CHANGE_UPDATED: _ClassVar[FeatureChange]
    FEATURE_CHANGE_REMOVED: _ClassVar[FeatureChange]

class DisagreementKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DISAGREEMENT_KIND_UNSPECIFIED: _ClassVar[DisagreementKind]
    DISAGREEMENT_KIND_MAP_WITHOUT_VISION: _ClassVar[DisagreementKind]
    DISAGREEMENT_KIND_VISION_WITHOUT_MAP: _ClassVar[DisagreementKind]
    DISAGREEMENT_KIND_ATTRIBUTE_MISMATCH: _ClassVar[DisagreementKind]
FEATURE_CHANGE_UNSPECIFIED: FeatureChange
FEATURE_CHANGE_CREATED: FeatureChange
FEATURE_CHANGE_UPDATED: FeatureChange
FEATURE_CHANGE_REMOVED: FeatureChange
DISAGREEMENT_KIND_UNSPECIFIED: DisagreementKind
DISAGREEMENT_KIND_MAP_WITHOUT_VISION: DisagreementKind
DISAGREEMENT_KIND_VISION_WITHOUT_MAP: DisagreementKind
DISAGREEMENT_KIND_ATTRIBUTE_MISMATCH: DisagreementKind

class MapFeatureUpdated(_message.Message):
    __slots__ = ("feature", "change", "updated_at")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    feature: _map_pb2.MapFeature
    change: FeatureChange
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, feature: _Optional[_Union[_map_pb2.MapFeature, _Mapping]] = ..., change: _Optional[_Union[FeatureChange, str]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Disagreement(_message.Message):
    __slots__ = ("disagreement_id", "vehicle_id", "frame_id", "kind", "feature", "detection", "distance_m", "observed_at", "ego", "mismatched_attributes")
    DISAGREEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    EGO_FIELD_NUMBER: _ClassVar[int]
    MISMATCHED_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    disagreement_id: str
    vehicle_id: str
    frame_id: str
    kind: DisagreementKind
    feature: _map_pb2.MapFeature
    detection: _common_pb2.Detection
    distance_m: float
    observed_at: _timestamp_pb2.Timestamp
    ego: _common_pb2.Pose
    mismatched_attributes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, disagreement_id: _Optional[str] = ..., vehicle_id: _Optional[str] = ..., frame_id: _Optional[str] = ..., kind: _Optional[_Union[DisagreementKind, str]] = ..., feature: _Optional[_Union[_map_pb2.MapFeature, _Mapping]] = ..., detection: _Optional[_Union[_common_pb2.Detection, _Mapping]] = ..., distance_m: _Optional[float] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ego: _Optional[_Union[_common_pb2.Pose, _Mapping]] = ..., mismatched_attributes: _Optional[_Iterable[str]] = ...) -> None: ...
