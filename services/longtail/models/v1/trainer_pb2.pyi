import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from longtail.common.v1 import common_pb2 as _common_pb2
from longtail.labels.v1 import labels_pb2 as _labels_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_KIND_UNSPECIFIED: _ClassVar[RunKind]
    RUN_KIND_MULTITASK: _ClassVar[RunKind]
    RUN_KIND_TRIGGER_DETECTOR: _ClassVar[RunKind]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_QUEUED: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_SUCCEEDED: _ClassVar[RunStatus]
    RUN_STATUS_REFUSED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]

class RunPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_PHASE_UNSPECIFIED: _ClassVar[RunPhase]
    RUN_PHASE_PREPARING: _ClassVar[RunPhase]
    RUN_PHASE_TRAINING: _ClassVar[RunPhase]
    RUN_PHASE_EVALUATING: _ClassVar[RunPhase]
    RUN_PHASE_GATING: _ClassVar[RunPhase]
    RUN_PHASE_PUBLISHING: _ClassVar[RunPhase]
    RUN_PHASE_DONE: _ClassVar[RunPhase]

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_CANDIDATE: _ClassVar[ModelState]
    MODEL_STATE_PRODUCTION: _ClassVar[ModelState]
    MODEL_STATE_REFUSED: _ClassVar[ModelState]
    MODEL_STATE_RETIRED: _ClassVar[ModelState]
RUN_KIND_UNSPECIFIED: RunKind
RUN_KIND_MULTITASK: RunKind
RUN_KIND_TRIGGER_DETECTOR: RunKind
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_QUEUED: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_SUCCEEDED: RunStatus
RUN_STATUS_REFUSED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_PHASE_UNSPECIFIED: RunPhase
RUN_PHASE_PREPARING: RunPhase
RUN_PHASE_TRAINING: RunPhase
RUN_PHASE_EVALUATING: RunPhase
RUN_PHASE_GATING: RunPhase
RUN_PHASE_PUBLISHING: RunPhase
RUN_PHASE_DONE: RunPhase
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_CANDIDATE: ModelState
MODEL_STATE_PRODUCTION: ModelState
MODEL_STATE_REFUSED: ModelState
MODEL_STATE_RETIRED: ModelState

class Waiver(_message.Message):
    __slots__ = ("suite", "case_id", "reason", "approved_by")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    suite: str
    case_id: str
    reason: str
    approved_by: str
    def __init__(self, suite: _Optional[str] = ..., case_id: _Optional[str] = ..., reason: _Optional[str] = ..., approved_by: _Optional[str] = ...) -> None: ...

class RunSpec(_message.Message):
    __slots__ = ("model_name", "kind", "detector_name", "datasets", "base_model", "tasks", "epochs", "seed", "hyperparameters", "waivers", "promote", "from_scratch", "positive_predicate")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    WAIVERS_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_FIELD_NUMBER: _ClassVar[int]
    FROM_SCRATCH_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_PREDICATE_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    kind: RunKind
    detector_name: str
    datasets: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetRef]
    base_model: _common_pb2.ModelRef
    tasks: _containers.RepeatedScalarFieldContainer[str]
    epochs: int
    seed: int
    hyperparameters: _struct_pb2.Struct
    waivers: _containers.RepeatedCompositeFieldContainer[Waiver]
    promote: bool
    from_scratch: bool
    positive_predicate: str
    def __init__(self, model_name: _Optional[str] = ..., kind: _Optional[_Union[RunKind, str]] = ..., detector_name: _Optional[str] = ..., datasets: _Optional[_Iterable[_Union[_common_pb2.DatasetRef, _Mapping]]] = ..., base_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., tasks: _Optional[_Iterable[str]] = ..., epochs: _Optional[int] = ..., seed: _Optional[int] = ..., hyperparameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., waivers: _Optional[_Iterable[_Union[Waiver, _Mapping]]] = ..., promote: _Optional[bool] = ..., from_scratch: _Optional[bool] = ..., positive_predicate: _Optional[str] = ...) -> None: ...

class SuiteGate(_message.Message):
    __slots__ = ("suite", "suite_version", "before_pass_rate", "after_pass_rate", "total", "regressed_case_ids", "fixed_case_ids", "waived_case_ids", "unstable_case_ids")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    SUITE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    AFTER_PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    REGRESSED_CASE_IDS_FIELD_NUMBER: _ClassVar[int]
    FIXED_CASE_IDS_FIELD_NUMBER: _ClassVar[int]
    WAIVED_CASE_IDS_FIELD_NUMBER: _ClassVar[int]
    UNSTABLE_CASE_IDS_FIELD_NUMBER: _ClassVar[int]
    suite: str
    suite_version: int
    before_pass_rate: float
    after_pass_rate: float
    total: int
    regressed_case_ids: _containers.RepeatedScalarFieldContainer[str]
    fixed_case_ids: _containers.RepeatedScalarFieldContainer[str]
    waived_case_ids: _containers.RepeatedScalarFieldContainer[str]
    unstable_case_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, suite: _Optional[str] = ..., suite_version: _Optional[int] = ..., before_pass_rate: _Optional[float] = ..., after_pass_rate: _Optional[float] = ..., total: _Optional[int] = ..., regressed_case_ids: _Optional[_Iterable[str]] = ..., fixed_case_ids: _Optional[_Iterable[str]] = ..., waived_case_ids: _Optional[_Iterable[str]] = ..., unstable_case_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GateReport(_message.Message):
    __slots__ = ("candidate", "baseline", "suites", "waivers_applied", "accepted", "reasons")
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    SUITES_FIELD_NUMBER: _ClassVar[int]
    WAIVERS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    candidate: _common_pb2.ModelRef
    baseline: _common_pb2.ModelRef
    suites: _containers.RepeatedCompositeFieldContainer[SuiteGate]
    waivers_applied: _containers.RepeatedCompositeFieldContainer[Waiver]
    accepted: bool
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, candidate: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., baseline: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., suites: _Optional[_Iterable[_Union[SuiteGate, _Mapping]]] = ..., waivers_applied: _Optional[_Iterable[_Union[Waiver, _Mapping]]] = ..., accepted: _Optional[bool] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "spec", "status", "phase", "progress", "epoch", "metrics", "model", "gate_report", "error", "created_at", "started_at", "finished_at", "triggered_by", "fresh_heads", "datasets_used")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GATE_REPORT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGERED_BY_FIELD_NUMBER: _ClassVar[int]
    FRESH_HEADS_FIELD_NUMBER: _ClassVar[int]
    DATASETS_USED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    spec: RunSpec
    status: RunStatus
    phase: RunPhase
    progress: float
    epoch: int
    metrics: _containers.ScalarMap[str, float]
    model: _common_pb2.ModelRef
    gate_report: GateReport
    error: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    triggered_by: str
    fresh_heads: _containers.RepeatedScalarFieldContainer[str]
    datasets_used: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., spec: _Optional[_Union[RunSpec, _Mapping]] = ..., status: _Optional[_Union[RunStatus, str]] = ..., phase: _Optional[_Union[RunPhase, str]] = ..., progress: _Optional[float] = ..., epoch: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., gate_report: _Optional[_Union[GateReport, _Mapping]] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., triggered_by: _Optional[str] = ..., fresh_heads: _Optional[_Iterable[str]] = ..., datasets_used: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("model", "parent", "kind", "detector_name", "datasets", "tasks", "metrics", "suite_results", "state", "repository_key", "config_key", "weights_key", "manifest_key", "sha256", "size_bytes", "run_id", "gate_report", "created_at", "promoted_at")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    SUITE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_KEY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_KEY_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_KEY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    GATE_REPORT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_AT_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    parent: _common_pb2.ModelRef
    kind: RunKind
    detector_name: str
    datasets: _containers.RepeatedCompositeFieldContainer[_common_pb2.DatasetRef]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    metrics: _containers.ScalarMap[str, float]
    suite_results: _containers.RepeatedCompositeFieldContainer[_labels_pb2.SuiteResult]
    state: ModelState
    repository_key: str
    config_key: str
    weights_key: str
    manifest_key: str
    sha256: str
    size_bytes: int
    run_id: str
    gate_report: GateReport
    created_at: _timestamp_pb2.Timestamp
    promoted_at: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., parent: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., kind: _Optional[_Union[RunKind, str]] = ..., detector_name: _Optional[str] = ..., datasets: _Optional[_Iterable[_Union[_common_pb2.DatasetRef, _Mapping]]] = ..., tasks: _Optional[_Iterable[str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., suite_results: _Optional[_Iterable[_Union[_labels_pb2.SuiteResult, _Mapping]]] = ..., state: _Optional[_Union[ModelState, str]] = ..., repository_key: _Optional[str] = ..., config_key: _Optional[str] = ..., weights_key: _Optional[str] = ..., manifest_key: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., run_id: _Optional[str] = ..., gate_report: _Optional[_Union[GateReport, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., promoted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("run_id", "spec")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    spec: RunSpec
    def __init__(self, run_id: _Optional[str] = ..., spec: _Optional[_Union[RunSpec, _Mapping]] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run", "already_existed")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    run: Run
    already_existed: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., already_existed: _Optional[bool] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("statuses", "page_size", "page_token")
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedScalarFieldContainer[RunStatus]
    page_size: int
    page_token: str
    def __init__(self, statuses: _Optional[_Iterable[_Union[RunStatus, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("name", "states", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    states: _containers.RepeatedScalarFieldContainer[ModelState]
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., states: _Optional[_Iterable[_Union[ModelState, str]]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_page_token")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    next_page_token: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class GetModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class PromoteModelRequest(_message.Message):
    __slots__ = ("model", "role", "reason", "shadow_fraction")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FRACTION_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    role: _common_pb2.ModelRole
    reason: str
    shadow_fraction: float
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., role: _Optional[_Union[_common_pb2.ModelRole, str]] = ..., reason: _Optional[str] = ..., shadow_fraction: _Optional[float] = ...) -> None: ...

class PromoteModelResponse(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ...) -> None: ...

class RollbackModelRequest(_message.Message):
    __slots__ = ("model_name", "to_version", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TO_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    to_version: int
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., to_version: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class RollbackModelResponse(_message.Message):
    __slots__ = ("model", "rolled_back_from")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ROLLED_BACK_FROM_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    rolled_back_from: _common_pb2.ModelRef
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., rolled_back_from: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ...) -> None: ...

class CompareModelsRequest(_message.Message):
    __slots__ = ("production", "candidate", "time_range", "sample_limit", "dataset", "split", "suites")
    PRODUCTION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    SUITES_FIELD_NUMBER: _ClassVar[int]
    production: _common_pb2.ModelRef
    candidate: _common_pb2.ModelRef
    time_range: _common_pb2.TimeRange
    sample_limit: int
    dataset: _common_pb2.DatasetRef
    split: str
    suites: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, production: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., candidate: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., time_range: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., sample_limit: _Optional[int] = ..., dataset: _Optional[_Union[_common_pb2.DatasetRef, _Mapping]] = ..., split: _Optional[str] = ..., suites: _Optional[_Iterable[str]] = ...) -> None: ...

class CompareModelsResponse(_message.Message):
    __slots__ = ("frames_compared", "frames_disagreeing", "disagreement_rate", "distinct_vehicles", "by_kind", "by_task", "by_class", "sample_frame_ids", "source")
    class ByKindEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByTaskEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByClassEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    FRAMES_COMPARED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DISAGREEING_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_RATE_FIELD_NUMBER: _ClassVar[int]
    DISTINCT_VEHICLES_FIELD_NUMBER: _ClassVar[int]
    BY_KIND_FIELD_NUMBER: _ClassVar[int]
    BY_TASK_FIELD_NUMBER: _ClassVar[int]
    BY_CLASS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FRAME_IDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    frames_compared: int
    frames_disagreeing: int
    disagreement_rate: float
    distinct_vehicles: int
    by_kind: _containers.ScalarMap[str, int]
    by_task: _containers.ScalarMap[str, int]
    by_class: _containers.ScalarMap[str, int]
    sample_frame_ids: _containers.RepeatedScalarFieldContainer[str]
    source: str
    def __init__(self, frames_compared: _Optional[int] = ..., frames_disagreeing: _Optional[int] = ..., disagreement_rate: _Optional[float] = ..., distinct_vehicles: _Optional[int] = ..., by_kind: _Optional[_Mapping[str, int]] = ..., by_task: _Optional[_Mapping[str, int]] = ..., by_class: _Optional[_Mapping[str, int]] = ..., sample_frame_ids: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ...) -> None: ...

class ImportModelRequest(_message.Message):
    __slots__ = ("model_name", "weights", "role", "reason")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    weights: bytes
    role: _common_pb2.ModelRole
    reason: str
    def __init__(self, model_name: _Optional[str] = ..., weights: _Optional[bytes] = ..., role: _Optional[_Union[_common_pb2.ModelRole, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ImportModelResponse(_message.Message):
    __slots__ = ("model", "already_existed")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    model: ModelVersion
    already_existed: bool
    def __init__(self, model: _Optional[_Union[ModelVersion, _Mapping]] = ..., already_existed: _Optional[bool] = ...) -> None: ...
