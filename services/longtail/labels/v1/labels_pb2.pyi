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

class Resolution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESOLUTION_UNSPECIFIED: _ClassVar[Resolution]
    RESOLUTION_AGREED: _ClassVar[Resolution]
    RESOLUTION_MAJORITY: _ClassVar[Resolution]
    RESOLUTION_REVIEW: _ClassVar[Resolution]

class LabelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_STATUS_UNSPECIFIED: _ClassVar[LabelStatus]
    LABEL_STATUS_LABELLED: _ClassVar[LabelStatus]
    LABEL_STATUS_UNLABELLED: _ClassVar[LabelStatus]

class LabellerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABELLER_KIND_UNSPECIFIED: _ClassVar[LabellerKind]
    LABELLER_KIND_HUMAN: _ClassVar[LabellerKind]
    LABELLER_KIND_SIMULATED: _ClassVar[LabellerKind]
RESOLUTION_UNSPECIFIED: Resolution
RESOLUTION_AGREED: Resolution
RESOLUTION_MAJORITY: Resolution
RESOLUTION_REVIEW: Resolution
LABEL_STATUS_UNSPECIFIED: LabelStatus
LABEL_STATUS_LABELLED: LabelStatus
LABEL_STATUS_UNLABELLED: LabelStatus
LABELLER_KIND_UNSPECIFIED: LabellerKind
LABELLER_KIND_HUMAN: LabellerKind
LABELLER_KIND_SIMULATED: LabellerKind

class Provenance(_message.Message):
    __slots__ = ("vehicle_id", "frame_id", "trigger_id", "trigger_version", "fire_id", "captured_at")
    VEHICLE_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    FIRE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    vehicle_id: str
    frame_id: str
    trigger_id: str
    trigger_version: int
    fire_id: str
    captured_at: _timestamp_pb2.Timestamp
    def __init__(self, vehicle_id: _Optional[str] = ..., frame_id: _Optional[str] = ..., trigger_id: _Optional[str] = ..., trigger_version: _Optional[int] = ..., fire_id: _Optional[str] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("sample_id", "provenance", "bucket", "object_key", "content_type", "size_bytes", "ego", "car_detections", "pre_labels", "pre_label_model", "priority", "tasks", "labelled_tasks", "registered_at")
    class PreLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.TaskPrediction
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.TaskPrediction, _Mapping]] = ...) -> None: ...
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    EGO_FIELD_NUMBER: _ClassVar[int]
    CAR_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    PRE_LABELS_FIELD_NUMBER: _ClassVar[int]
    PRE_LABEL_MODEL_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    LABELLED_TASKS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    provenance: Provenance
    bucket: str
    object_key: str
    content_type: str
    size_bytes: int
    ego: _common_pb2.Pose
    car_detections: _containers.RepeatedCompositeFieldContainer[_common_pb2.Detection]
    pre_labels: _containers.MessageMap[str, _common_pb2.TaskPrediction]
    pre_label_model: _common_pb2.ModelRef
    priority: float
    tasks: _containers.RepeatedScalarFieldContainer[str]
    labelled_tasks: _containers.RepeatedScalarFieldContainer[str]
    registered_at: _timestamp_pb2.Timestamp
    def __init__(self, sample_id: _Optional[str] = ..., provenance: _Optional[_Union[Provenance, _Mapping]] = ..., bucket: _Optional[str] = ..., object_key: _Optional[str] = ..., content_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., ego: _Optional[_Union[_common_pb2.Pose, _Mapping]] = ..., car_detections: _Optional[_Iterable[_Union[_common_pb2.Detection, _Mapping]]] = ..., pre_labels: _Optional[_Mapping[str, _common_pb2.TaskPrediction]] = ..., pre_label_model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., priority: _Optional[float] = ..., tasks: _Optional[_Iterable[str]] = ..., labelled_tasks: _Optional[_Iterable[str]] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterSampleRequest(_message.Message):
    __slots__ = ("sample",)
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class RegisterSampleResponse(_message.Message):
    __slots__ = ("sample", "already_existed")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    already_existed: bool
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., already_existed: _Optional[bool] = ...) -> None: ...

class GetSampleRequest(_message.Message):
    __slots__ = ("sample_id",)
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    def __init__(self, sample_id: _Optional[str] = ...) -> None: ...

class GetSampleResponse(_message.Message):
    __slots__ = ("sample", "labels", "states")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    states: _containers.RepeatedCompositeFieldContainer[TaskLabelState]
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., states: _Optional[_Iterable[_Union[TaskLabelState, _Mapping]]] = ...) -> None: ...

class TaskLabelState(_message.Message):
    __slots__ = ("task", "labels_required", "labels_done", "in_review", "disagreement", "resolution", "final_label_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    LABELS_DONE_FIELD_NUMBER: _ClassVar[int]
    IN_REVIEW_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    FINAL_LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    task: str
    labels_required: int
    labels_done: int
    in_review: bool
    disagreement: bool
    resolution: Resolution
    final_label_id: str
    def __init__(self, task: _Optional[str] = ..., labels_required: _Optional[int] = ..., labels_done: _Optional[int] = ..., in_review: _Optional[bool] = ..., disagreement: _Optional[bool] = ..., resolution: _Optional[_Union[Resolution, str]] = ..., final_label_id: _Optional[str] = ...) -> None: ...

class SampleFilter(_message.Message):
    __slots__ = ("tasks", "trigger_ids", "vehicle_ids", "captured", "label_status", "include_suite_cases", "sample_ids")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_IDS_FIELD_NUMBER: _ClassVar[int]
    VEHICLE_IDS_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FIELD_NUMBER: _ClassVar[int]
    LABEL_STATUS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_SUITE_CASES_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedScalarFieldContainer[str]
    trigger_ids: _containers.RepeatedScalarFieldContainer[str]
    vehicle_ids: _containers.RepeatedScalarFieldContainer[str]
    captured: _common_pb2.TimeRange
    label_status: LabelStatus
    include_suite_cases: bool
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tasks: _Optional[_Iterable[str]] = ..., trigger_ids: _Optional[_Iterable[str]] = ..., vehicle_ids: _Optional[_Iterable[str]] = ..., captured: _Optional[_Union[_common_pb2.TimeRange, _Mapping]] = ..., label_status: _Optional[_Union[LabelStatus, str]] = ..., include_suite_cases: _Optional[bool] = ..., sample_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListSamplesRequest(_message.Message):
    __slots__ = ("filter", "page_size", "page_token")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filter: SampleFilter
    page_size: int
    page_token: str
    def __init__(self, filter: _Optional[_Union[SampleFilter, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSamplesResponse(_message.Message):
    __slots__ = ("samples", "next_page_token")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    next_page_token: str
    def __init__(self, samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AttributeSpec(_message.Message):
    __slots__ = ("name", "values", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("name", "prototype", "classes", "attributes", "keypoint_names", "description", "created_at", "labels_per_sample", "object_size_m")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROTOTYPE_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    KEYPOINT_NAMES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELS_PER_SAMPLE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_SIZE_M_FIELD_NUMBER: _ClassVar[int]
    name: str
    prototype: _common_pb2.TaskPrototype
    classes: _containers.RepeatedScalarFieldContainer[str]
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeSpec]
    keypoint_names: _containers.RepeatedScalarFieldContainer[str]
    description: str
    created_at: _timestamp_pb2.Timestamp
    labels_per_sample: int
    object_size_m: float
    def __init__(self, name: _Optional[str] = ..., prototype: _Optional[_Union[_common_pb2.TaskPrototype, str]] = ..., classes: _Optional[_Iterable[str]] = ..., attributes: _Optional[_Iterable[_Union[AttributeSpec, _Mapping]]] = ..., keypoint_names: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels_per_sample: _Optional[int] = ..., object_size_m: _Optional[float] = ...) -> None: ...

class UpsertTaskRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class UpsertTaskResponse(_message.Message):
    __slots__ = ("task", "created")
    TASK_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    task: Task
    created: bool
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task", "queue_depth", "review_depth", "leased", "done")
    TASK_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    REVIEW_DEPTH_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    task: Task
    queue_depth: int
    review_depth: int
    leased: int
    done: int
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., queue_depth: _Optional[int] = ..., review_depth: _Optional[int] = ..., leased: _Optional[int] = ..., done: _Optional[int] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("label_id", "sample_id", "task", "labeller_id", "labeller_kind", "annotation", "trigger_true_positive", "created_at", "labelling_time")
    LABEL_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELLER_ID_FIELD_NUMBER: _ClassVar[int]
    LABELLER_KIND_FIELD_NUMBER: _ClassVar[int]
    ANNOTATION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TRUE_POSITIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LABELLING_TIME_FIELD_NUMBER: _ClassVar[int]
    label_id: str
    sample_id: str
    task: str
    labeller_id: str
    labeller_kind: LabellerKind
    annotation: _common_pb2.TaskOutput
    trigger_true_positive: bool
    created_at: _timestamp_pb2.Timestamp
    labelling_time: _duration_pb2.Duration
    def __init__(self, label_id: _Optional[str] = ..., sample_id: _Optional[str] = ..., task: _Optional[str] = ..., labeller_id: _Optional[str] = ..., labeller_kind: _Optional[_Union[LabellerKind, str]] = ..., annotation: _Optional[_Union[_common_pb2.TaskOutput, _Mapping]] = ..., trigger_true_positive: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labelling_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class LabelLease(_message.Message):
    __slots__ = ("lease_id", "expires_at", "labeller_id", "task", "sample", "pre_label", "review", "previous_labels")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    LABELLER_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    PRE_LABEL_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_LABELS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    expires_at: _timestamp_pb2.Timestamp
    labeller_id: str
    task: str
    sample: Sample
    pre_label: _common_pb2.TaskPrediction
    review: bool
    previous_labels: _containers.RepeatedCompositeFieldContainer[Label]
    def __init__(self, lease_id: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labeller_id: _Optional[str] = ..., task: _Optional[str] = ..., sample: _Optional[_Union[Sample, _Mapping]] = ..., pre_label: _Optional[_Union[_common_pb2.TaskPrediction, _Mapping]] = ..., review: _Optional[bool] = ..., previous_labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ...) -> None: ...

class GetNextTaskRequest(_message.Message):
    __slots__ = ("task", "labeller_id", "lease_duration", "review", "sample_id")
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELLER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    task: str
    labeller_id: str
    lease_duration: _duration_pb2.Duration
    review: bool
    sample_id: str
    def __init__(self, task: _Optional[str] = ..., labeller_id: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., review: _Optional[bool] = ..., sample_id: _Optional[str] = ...) -> None: ...

class GetNextTaskResponse(_message.Message):
    __slots__ = ("lease", "queue_depth")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    lease: LabelLease
    queue_depth: int
    def __init__(self, lease: _Optional[_Union[LabelLease, _Mapping]] = ..., queue_depth: _Optional[int] = ...) -> None: ...

class SubmitLabelRequest(_message.Message):
    __slots__ = ("lease_id", "idempotency_key", "label")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    idempotency_key: str
    label: Label
    def __init__(self, lease_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., label: _Optional[_Union[Label, _Mapping]] = ...) -> None: ...

class SubmitLabelResponse(_message.Message):
    __slots__ = ("label", "duplicate")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    label: Label
    duplicate: bool
    def __init__(self, label: _Optional[_Union[Label, _Mapping]] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class ReleaseLeaseRequest(_message.Message):
    __slots__ = ("lease_id", "reason")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    reason: str
    def __init__(self, lease_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseLeaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class ListQueueRequest(_message.Message):
    __slots__ = ("task", "review", "page_size", "page_token")
    TASK_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    task: str
    review: bool
    page_size: int
    page_token: str
    def __init__(self, task: _Optional[str] = ..., review: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class QueueItem(_message.Message):
    __slots__ = ("sample", "labels_required", "labels_done", "leased")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    LABELS_DONE_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    labels_required: int
    labels_done: int
    leased: bool
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., labels_required: _Optional[int] = ..., labels_done: _Optional[int] = ..., leased: _Optional[bool] = ...) -> None: ...

class ListQueueResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[QueueItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[QueueItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SplitSpec(_message.Message):
    __slots__ = ("val_fraction", "test_fraction")
    VAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    TEST_FRACTION_FIELD_NUMBER: _ClassVar[int]
    val_fraction: float
    test_fraction: float
    def __init__(self, val_fraction: _Optional[float] = ..., test_fraction: _Optional[float] = ...) -> None: ...

class SplitCounts(_message.Message):
    __slots__ = ("train", "val", "test")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    train: int
    val: int
    test: int
    def __init__(self, train: _Optional[int] = ..., val: _Optional[int] = ..., test: _Optional[int] = ...) -> None: ...

class DatasetVersion(_message.Message):
    __slots__ = ("name", "version", "tasks", "manifest_key", "manifest_sha256", "split_counts", "label_count", "filter", "created_at", "description", "split")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    SPLIT_COUNTS_FIELD_NUMBER: _ClassVar[int]
    LABEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    tasks: _containers.RepeatedScalarFieldContainer[str]
    manifest_key: str
    manifest_sha256: str
    split_counts: SplitCounts
    label_count: int
    filter: SampleFilter
    created_at: _timestamp_pb2.Timestamp
    description: str
    split: SplitSpec
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., tasks: _Optional[_Iterable[str]] = ..., manifest_key: _Optional[str] = ..., manifest_sha256: _Optional[str] = ..., split_counts: _Optional[_Union[SplitCounts, _Mapping]] = ..., label_count: _Optional[int] = ..., filter: _Optional[_Union[SampleFilter, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., split: _Optional[_Union[SplitSpec, _Mapping]] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("name", "tasks", "filter", "split", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    filter: SampleFilter
    split: SplitSpec
    description: str
    def __init__(self, name: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[SampleFilter, _Mapping]] = ..., split: _Optional[_Union[SplitSpec, _Mapping]] = ..., description: _Optional[str] = ...) -> None: ...

class CreateDatasetResponse(_message.Message):
    __slots__ = ("dataset", "already_existed")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetVersion
    already_existed: bool
    def __init__(self, dataset: _Optional[_Union[DatasetVersion, _Mapping]] = ..., already_existed: _Optional[bool] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetVersion
    def __init__(self, dataset: _Optional[_Union[DatasetVersion, _Mapping]] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("name", "page_size", "page_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    page_size: int
    page_token: str
    def __init__(self, name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[DatasetVersion]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[DatasetVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RebuildDatasetRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RebuildDatasetResponse(_message.Message):
    __slots__ = ("dataset", "rebuilt_sha256", "matches", "reuploaded")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    REBUILT_SHA256_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    REUPLOADED_FIELD_NUMBER: _ClassVar[int]
    dataset: DatasetVersion
    rebuilt_sha256: str
    matches: bool
    reuploaded: bool
    def __init__(self, dataset: _Optional[_Union[DatasetVersion, _Mapping]] = ..., rebuilt_sha256: _Optional[str] = ..., matches: _Optional[bool] = ..., reuploaded: _Optional[bool] = ...) -> None: ...

class SuiteCase(_message.Message):
    __slots__ = ("case_id", "suite", "sample_id", "predicate", "note", "added_at")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    suite: str
    sample_id: str
    predicate: str
    note: str
    added_at: _timestamp_pb2.Timestamp
    def __init__(self, case_id: _Optional[str] = ..., suite: _Optional[str] = ..., sample_id: _Optional[str] = ..., predicate: _Optional[str] = ..., note: _Optional[str] = ..., added_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Suite(_message.Message):
    __slots__ = ("name", "version", "task", "cases_count", "description", "source_yaml", "updated_at", "cases")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CASES_COUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_YAML_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    CASES_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    task: str
    cases_count: int
    description: str
    source_yaml: str
    updated_at: _timestamp_pb2.Timestamp
    cases: _containers.RepeatedCompositeFieldContainer[SuiteCase]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., task: _Optional[str] = ..., cases_count: _Optional[int] = ..., description: _Optional[str] = ..., source_yaml: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cases: _Optional[_Iterable[_Union[SuiteCase, _Mapping]]] = ...) -> None: ...

class CaseResult(_message.Message):
    __slots__ = ("case_id", "sample_id", "passed", "detail")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    sample_id: str
    passed: bool
    detail: str
    def __init__(self, case_id: _Optional[str] = ..., sample_id: _Optional[str] = ..., passed: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class SuiteResult(_message.Message):
    __slots__ = ("suite", "suite_version", "model", "passed", "total", "pass_rate", "failed_case_ids", "case_results", "evaluated_at")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    SUITE_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PASS_RATE_FIELD_NUMBER: _ClassVar[int]
    FAILED_CASE_IDS_FIELD_NUMBER: _ClassVar[int]
    CASE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_AT_FIELD_NUMBER: _ClassVar[int]
    suite: str
    suite_version: int
    model: _common_pb2.ModelRef
    passed: int
    total: int
    pass_rate: float
    failed_case_ids: _containers.RepeatedScalarFieldContainer[str]
    case_results: _containers.RepeatedCompositeFieldContainer[CaseResult]
    evaluated_at: _timestamp_pb2.Timestamp
    def __init__(self, suite: _Optional[str] = ..., suite_version: _Optional[int] = ..., model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., passed: _Optional[int] = ..., total: _Optional[int] = ..., pass_rate: _Optional[float] = ..., failed_case_ids: _Optional[_Iterable[str]] = ..., case_results: _Optional[_Iterable[_Union[CaseResult, _Mapping]]] = ..., evaluated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UpsertSuiteRequest(_message.Message):
    __slots__ = ("yaml",)
    YAML_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    def __init__(self, yaml: _Optional[str] = ...) -> None: ...

class UpsertSuiteResponse(_message.Message):
    __slots__ = ("suite", "changed")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    suite: Suite
    changed: bool
    def __init__(self, suite: _Optional[_Union[Suite, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class GetSuiteRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetSuiteResponse(_message.Message):
    __slots__ = ("suite",)
    SUITE_FIELD_NUMBER: _ClassVar[int]
    suite: Suite
    def __init__(self, suite: _Optional[_Union[Suite, _Mapping]] = ...) -> None: ...

class ListSuitesRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class ListSuitesResponse(_message.Message):
    __slots__ = ("suites",)
    SUITES_FIELD_NUMBER: _ClassVar[int]
    suites: _containers.RepeatedCompositeFieldContainer[Suite]
    def __init__(self, suites: _Optional[_Iterable[_Union[Suite, _Mapping]]] = ...) -> None: ...

class PromoteToSuiteCaseRequest(_message.Message):
    __slots__ = ("suite", "sample_id", "predicate", "note")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICATE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    suite: str
    sample_id: str
    predicate: str
    note: str
    def __init__(self, suite: _Optional[str] = ..., sample_id: _Optional[str] = ..., predicate: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class PromoteToSuiteCaseResponse(_message.Message):
    __slots__ = ("case", "suite", "already_existed")
    CASE_FIELD_NUMBER: _ClassVar[int]
    SUITE_FIELD_NUMBER: _ClassVar[int]
    ALREADY_EXISTED_FIELD_NUMBER: _ClassVar[int]
    case: SuiteCase
    suite: Suite
    already_existed: bool
    def __init__(self, case: _Optional[_Union[SuiteCase, _Mapping]] = ..., suite: _Optional[_Union[Suite, _Mapping]] = ..., already_existed: _Optional[bool] = ...) -> None: ...

class CasePredictions(_message.Message):
    __slots__ = ("sample_id", "predictions")
    class PredictionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.TaskPrediction
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.TaskPrediction, _Mapping]] = ...) -> None: ...
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    sample_id: str
    predictions: _containers.MessageMap[str, _common_pb2.TaskPrediction]
    def __init__(self, sample_id: _Optional[str] = ..., predictions: _Optional[_Mapping[str, _common_pb2.TaskPrediction]] = ...) -> None: ...

class EvaluateSuitesRequest(_message.Message):
    __slots__ = ("model", "suites", "predictions", "record")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SUITES_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelRef
    suites: _containers.RepeatedScalarFieldContainer[str]
    predictions: _containers.RepeatedCompositeFieldContainer[CasePredictions]
    record: bool
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelRef, _Mapping]] = ..., suites: _Optional[_Iterable[str]] = ..., predictions: _Optional[_Iterable[_Union[CasePredictions, _Mapping]]] = ..., record: _Optional[bool] = ...) -> None: ...

class EvaluateSuitesResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SuiteResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SuiteResult, _Mapping]]] = ...) -> None: ...

class GetSuiteReportRequest(_message.Message):
    __slots__ = ("suite", "model_name", "last_versions")
    SUITE_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    suite: str
    model_name: str
    last_versions: int
    def __init__(self, suite: _Optional[str] = ..., model_name: _Optional[str] = ..., last_versions: _Optional[int] = ...) -> None: ...

class GetSuiteReportResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SuiteResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SuiteResult, _Mapping]]] = ...) -> None: ...
