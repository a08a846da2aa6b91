import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TriggerSite(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_SITE_UNSPECIFIED: _ClassVar[TriggerSite]
    TRIGGER_SITE_EDGE: _ClassVar[TriggerSite]
    TRIGGER_SITE_FLEET: _ClassVar[TriggerSite]
    TRIGGER_SITE_BOTH: _ClassVar[TriggerSite]

class FiringMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIRING_MODE_UNSPECIFIED: _ClassVar[FiringMode]
    FIRING_MODE_RISING_EDGE: _ClassVar[FiringMode]
    FIRING_MODE_EVERY_FRAME: _ClassVar[FiringMode]

class TriggerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_STATE_UNSPECIFIED: _ClassVar[TriggerState]
    TRIGGER_STATE_DRAFT: _ClassVar[TriggerState]
    TRIGGER_STATE_ACTIVE: _ClassVar[TriggerState]
    TRIGGER_STATE_PAUSED: _ClassVar[TriggerState]
    TRIGGER_STATE_RETIRED: _ClassVar[TriggerState]
    TRIGGER_STATE_EXHAUSTED: _ClassVar[TriggerState]
TRIGGER_SITE_UNSPECIFIED: TriggerSite
TRIGGER_SITE_EDGE: TriggerSite
TRIGGER_SITE_FLEET: TriggerSite
TRIGGER_SITE_BOTH: TriggerSite
FIRING_MODE_UNSPECIFIED: FiringMode
FIRING_MODE_RISING_EDGE: FiringMode
FIRING_MODE_EVERY_FRAME: FiringMode
TRIGGER_STATE_UNSPECIFIED: TriggerState
TRIGGER_STATE_DRAFT: TriggerState
TRIGGER_STATE_ACTIVE: TriggerState
TRIGGER_STATE_PAUSED: TriggerState
TRIGGER_STATE_RETIRED: TriggerState
TRIGGER_STATE_EXHAUSTED: TriggerState

class CaptureWindow(_message.Message):
    __slots__ = ("frames_before", "frames_after")
    FRAMES_BEFORE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_AFTER_FIELD_NUMBER: _ClassVar[int]
    frames_before: int
    frames_after: int
    def __init__(self, frames_before: _Optional[int] = ..., frames_after: _Optional[int] = ...) -> None: ...

class TriggerSpec(_message.Message):
    __slots__ = ("name", "expression", "site", "task", "firing_mode", "min_interval", "capture_window", "upload_budget", "max_uploads_per_car_hour", "priority", "starts_at", "expires_at", "yield_floor", "yield_min_labelled", "detectors", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    FIRING_MODE_FIELD_NUMBER: _ClassVar[int]
    MIN_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MAX_UPLOADS_PER_CAR_HOUR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    YIELD_FLOOR_FIELD_NUMBER: _ClassVar[int]
    YIELD_MIN_LABELLED_FIELD_NUMBER: _ClassVar[int]
    DETECTORS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: str
    site: TriggerSite
    task: str
    firing_mode: FiringMode
    min_interval: _duration_pb2.Duration
    capture_window: CaptureWindow
    upload_budget: int
    max_uploads_per_car_hour: float
    priority: int
    starts_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    yield_floor: float
    yield_min_labelled: int
    detectors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ModelRef]
    description: str
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[str] = ..., site: _Optional[_Union[TriggerSite, str]] = ..., task: _Optional[str] = ..., firing_mode: _Optional[_Union[FiringMode, str]] = ..., min_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., capture_window: _Optional[_Union[CaptureWindow, _Mapping]] = ..., upload_budget: _Optional[int] = ..., max_uploads_per_car_hour: _Optional[float] = ..., priority: _Optional[int] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., yield_floor: _Optional[float] = ..., yield_min_labelled: _Optional[int] = ..., detectors: _Optional[_Iterable[_Union[_common_pb2.ModelRef, _Mapping]]] = ..., description: _Optional[str] = ...) -> None: ...

class Trigger(_message.Message):
    __slots__ = ("trigger_id", "version", "spec", "state", "state_reason", "created_by", "created_at", "updated_at")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    version: int
    spec: TriggerSpec
    state: TriggerState
    state_reason: str
    created_by: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, trigger_id: _Optional[str] = ..., version: _Optional[int] = ..., spec: _Optional[_Union[TriggerSpec, _Mapping]] = ..., state: _Optional[_Union[TriggerState, str]] = ..., state_reason: _Optional[str] = ..., created_by: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TriggerRef(_message.Message):
    __slots__ = ("trigger_id", "version")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    version: int
    def __init__(self, trigger_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CreateTriggerRequest(_message.Message):
    __slots__ = ("trigger_id", "spec")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    spec: TriggerSpec
    def __init__(self, trigger_id: _Optional[str] = ..., spec: _Optional[_Union[TriggerSpec, _Mapping]] = ...) -> None: ...

class CreateTriggerResponse(_message.Message):
    __slots__ = ("trigger", "already_existed")
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    already_existed: bool
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ..., already_existed: _Optional[bool] = ...) -> None: ...

class UpdateTriggerRequest(_message.Message):
    __slots__ = ("trigger_id", "spec", "expected_version")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    spec: TriggerSpec
    expected_version: int
    def __init__(self, trigger_id: _Optional[str] = ..., spec: _Optional[_Union[TriggerSpec, _Mapping]] = ..., expected_version: _Optional[int] = ...) -> None: ...

class UpdateTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class ValidateTriggerRequest(_message.Message):
    __slots__ = ("expression", "spec")
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    expression: str
    spec: TriggerSpec
    def __init__(self, expression: _Optional[str] = ..., spec: _Optional[_Union[TriggerSpec, _Mapping]] = ...) -> None: ...

class ValidationError(_message.Message):
    __slots__ = ("line", "column", "message", "snippet", "field")
    LINE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    line: int
    column: int
    message: str
    snippet: str
    field: str
    def __init__(self, line: _Optional[int] = ..., column: _Optional[int] = ..., message: _Optional[str] = ..., snippet: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class ValidateTriggerResponse(_message.Message):
    __slots__ = ("ok", "errors", "referenced_detectors")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_DETECTORS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    errors: _containers.RepeatedCompositeFieldContainer[ValidationError]
    referenced_detectors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ok: _Optional[bool] = ..., errors: _Optional[_Iterable[_Union[ValidationError, _Mapping]]] = ..., referenced_detectors: _Optional[_Iterable[str]] = ...) -> None: ...

class GetTriggerRequest(_message.Message):
    __slots__ = ("trigger_id", "version")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    version: int
    def __init__(self, trigger_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class ListTriggersRequest(_message.Message):
    __slots__ = ("states", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[TriggerState]
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[TriggerState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTriggersResponse(_message.Message):
    __slots__ = ("triggers", "next_page_token")
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    triggers: _containers.RepeatedCompositeFieldContainer[Trigger]
    next_page_token: str
    def __init__(self, triggers: _Optional[_Iterable[_Union[Trigger, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ActivateTriggerRequest(_message.Message):
    __slots__ = ("trigger_id", "expected_version")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    expected_version: int
    def __init__(self, trigger_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class ActivateTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class PauseTriggerRequest(_message.Message):
    __slots__ = ("trigger_id", "reason")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    reason: str
    def __init__(self, trigger_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class RetireTriggerRequest(_message.Message):
    __slots__ = ("trigger_id", "reason")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    reason: str
    def __init__(self, trigger_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RetireTriggerResponse(_message.Message):
    __slots__ = ("trigger",)
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    trigger: Trigger
    def __init__(self, trigger: _Optional[_Union[Trigger, _Mapping]] = ...) -> None: ...

class BacktestTriggerRequest(_message.Message):
    __slots__ = ("trigger", "spec", "time_range", "segment_key", "sample_limit", "max_frames")
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_KEY_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    trigger: TriggerRef
    spec: TriggerSpec
    time_range: _common_pb2.TimeRange
    segment_key: str
    sample_limit: int
    max_frames: int
    def __init__(self, trigger: _Optional[_Union[TriggerRef, _Mapping]] = ..., spec: _Optional[_Union[TriggerSpec, _Mapping]] = ..., time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., segment_key: _Optional[str] = ..., sample_limit: _Optional[int] = ..., max_frames: _Optional[int] = ...) -> None: ...

class BacktestFire(_message.Message):
    __slots__ = ("frame_id", "vehicle_id", "captured_at", "score")
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    frame_id: str
    vehicle_id: str
    captured_at: _timestamp_pb2.Timestamp
    score: float
    def __init__(self, frame_id: _Optional[str] = ..., vehicle_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class BacktestTriggerResponse(_message.Message):
    __slots__ = ("frames_evaluated", "fires", "distinct_vehicles", "car_hours", "fires_per_car_hour", "expected_uploads_per_day", "upload_budget", "days_to_exhaust_budget", "sample")
    FRAMES_EVALUATED_FIELD_NUMBER: _ClassVar[int]
    FIRES_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_VEHICLES_FIELD_NUMBER: _ClassVar[int]
    CAR_HOURS_FIELD_NUMBER: _ClassVar[int]
    FIRES_PER_CAR_HOUR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_UPLOADS_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_BUDGET_FIELD_NUMBER: _ClassVar[int]
    DAYS_TO_EXHAUST_BUDGET_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    frames_evaluated: int
    fires: int
    distinct_vehicles: int
    car_hours: float
    fires_per_car_hour: float
    expected_uploads_per_day: float
    upload_budget: int
    days_to_exhaust_budget: float
    sample: _containers.RepeatedCompositeFieldContainer[BacktestFire]
    def __init__(self, frames_evaluated: _Optional[int] = ..., fires: _Optional[int] = ..., distinct_vehicles: _Optional[int] = ..., car_hours: _Optional[float] = ..., fires_per_car_hour: _Optional[float] = ..., expected_uploads_per_day: _Optional[float] = ..., upload_budget: _Optional[int] = ..., days_to_exhaust_budget: _Optional[float] = ..., sample: _Optional[_Iterable[_Union[BacktestFire, _Mapping]]] = ...) -> None: ...

class GetYieldRequest(_message.Message):
    __slots__ = ("trigger_id",)
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    def __init__(self, trigger_id: _Optional[str] = ...) -> None: ...

class TriggerYield(_message.Message):
    __slots__ = ("trigger_id", "trigger_version", "fired", "uploaded", "labelled", "true_positive", "yield_ratio", "upload_budget", "budget_remaining", "updated_at")
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRED_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    TRUE_POSITIVE_FIELD_NUMBER: _ClassVar[int]
    YIELD_RATIO_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_BUDGET_FIELD_NUMBER: _ClassVar[int]
    BUDGET_REMAINING_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    trigger_id: str
    trigger_version: int
    fired: int
    uploaded: int
    labelled: int
    true_positive: int
    yield_ratio: float
    upload_budget: int
    budget_remaining: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, trigger_id: _Optional[str] = ..., trigger_version: _Optional[int] = ..., fired: _Optional[int] = ..., uploaded: _Optional[int] = ..., labelled: _Optional[int] = ..., true_positive: _Optional[int] = ..., yield_ratio: _Optional[float] = ..., upload_budget: _Optional[int] = ..., budget_remaining: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetYieldResponse(_message.Message):
    __slots__ = ("yields",)
    YIELDS_FIELD_NUMBER: _ClassVar[int]
    yields: _containers.RepeatedCompositeFieldContainer[TriggerYield]
    def __init__(self, yields: _Optional[_Iterable[_Union[TriggerYield, _Mapping]]] = ...) -> None: ...
