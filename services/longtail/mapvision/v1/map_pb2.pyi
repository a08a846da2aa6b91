import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_KIND_UNSPECIFIED: _ClassVar[FeatureKind]
    FEATURE_KIND_STOP_SIGN: _ClassVar[FeatureKind]
    FEATURE_KIND_TRAFFIC_LIGHT: _ClassVar[FeatureKind]

class FeatureSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEATURE_SOURCE_UNSPECIFIED: _ClassVar[FeatureSource]
    FEATURE_SOURCE_SEED: _ClassVar[FeatureSource]
    FEATURE_SOURCE_FLEET: _ClassVar[FeatureSource]
FEATURE_KIND_UNSPECIFIED: FeatureKind
FEATURE_KIND_STOP_SIGN: FeatureKind
FEATURE_KIND_TRAFFIC_LIGHT: FeatureKind
FEATURE_SOURCE_UNSPECIFIED: FeatureSource
FEATURE_SOURCE_SEED: FeatureSource
FEATURE_SOURCE_FLEET: FeatureSource

class MapFeature(_message.Message):
    __slots__ = ("feature_id", "kind", "x", "y", "heading", "attributes", "confidence", "observation_count", "miss_count", "first_seen", "last_seen", "source", "removed")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FEATURE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    HEADING_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    MISS_COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    feature_id: str
    kind: FeatureKind
    x: float
    y: float
    heading: float
    attributes: _containers.ScalarMap[str, str]
    confidence: float
    observation_count: int
    miss_count: int
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    source: FeatureSource
    removed: bool
    def __init__(self, feature_id: _Optional[str] = ..., kind: _Optional[_Union[FeatureKind, str]] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., heading: _Optional[float] = ..., attributes: _Optional[_Mapping[str, str]] = ..., confidence: _Optional[float] = ..., observation_count: _Optional[int] = ..., miss_count: _Optional[int] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[_Union[FeatureSource, str]] = ..., removed: _Optional[bool] = ...) -> None: ...
