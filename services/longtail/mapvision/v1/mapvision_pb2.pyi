import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.common.v1 import common_pb2 as _common_pb2
from longtail.mapvision.v1 import events_pb2 as _events_pb2
from longtail.mapvision.v1 import map_pb2 as _map_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Region(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class GetMapRequest(_message.Message):
    __slots__ = ("region", "kinds", "min_confidence", "include_removed")
    REGION_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_REMOVED_FIELD_NUMBER: _ClassVar[int]
    region: Region
    kinds: _containers.RepeatedScalarFieldContainer[_map_pb2.FeatureKind]
    min_confidence: float
    include_removed: bool
    def __init__(self, region: _Optional[_Union[Region, _Mapping]] = ..., kinds: _Optional[_Iterable[_Union[_map_pb2.FeatureKind, str]]] = ..., min_confidence: _Optional[float] = ..., include_removed: _Optional[bool] = ...) -> None: ...

class GetMapResponse(_message.Message):
    __slots__ = ("features", "as_of")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[_map_pb2.MapFeature]
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, features: _Optional[_Iterable[_Union[_map_pb2.MapFeature, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetFeatureRequest(_message.Message):
    __slots__ = ("feature_id",)
    FEATURE_ID_FIELD_NUMBER: _ClassVar[int]
    feature_id: str
    def __init__(self, feature_id: _Optional[str] = ...) -> None: ...

class GetFeatureResponse(_message.Message):
    __slots__ = ("feature",)
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    feature: _map_pb2.MapFeature
    def __init__(self, feature: _Optional[_Union[_map_pb2.MapFeature, _Mapping]] = ...) -> None: ...

class ListDisagreementsRequest(_message.Message):
    __slots__ = ("vehicle_id", "kinds", "feature_id", "time_range", "page_size", "page_token")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    kinds: _containers.RepeatedScalarFieldContainer[_events_pb2.DisagreementKind]
    feature_id: str
    time_range: _common_pb2.TimeRange
    page_size: int
    page_token: str
    def __init__(self, vehicle_id: _Optional[str] = ..., kinds: _Optional[_Iterable[_Union[_events_pb2.DisagreementKind, str]]] = ..., feature_id: _Optional[str] = ..., time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDisagreementsResponse(_message.Message):
    __slots__ = ("disagreements", "next_page_token")
    DISAGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    disagreements: _containers.RepeatedCompositeFieldContainer[_events_pb2.Disagreement]
    next_page_token: str
    def __init__(self, disagreements: _Optional[_Iterable[_Union[_events_pb2.Disagreement, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SeedMapRequest(_message.Message):
    __slots__ = ("features", "replace")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedCompositeFieldContainer[_map_pb2.MapFeature]
    replace: bool
    def __init__(self, features: _Optional[_Iterable[_Union[_map_pb2.MapFeature, _Mapping]]] = ..., replace: _Optional[bool] = ...) -> None: ...

class SeedMapResponse(_message.Message):
    __slots__ = ("created", "updated", "removed")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    created: int
    updated: int
    removed: int
    def __init__(self, created: _Optional[int] = ..., updated: _Optional[int] = ..., removed: _Optional[int] = ...) -> None: ...
