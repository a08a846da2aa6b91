import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_ROLE_UNSPECIFIED: _ClassVar[ModelRole]
    MODEL_ROLE_PRODUCTION: _ClassVar[ModelRole]
    MODEL_ROLE_CANDIDATE: _ClassVar[ModelRole]
    MODEL_ROLE_TRIGGER_DETECTOR: _ClassVar[ModelRole]

class TaskPrototype(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_PROTOTYPE_UNSPECIFIED: _ClassVar[TaskPrototype]
    TASK_PROTOTYPE_CLASSIFICATION: _ClassVar[TaskPrototype]
    TASK_PROTOTYPE_DETECTION: _ClassVar[TaskPrototype]
    TASK_PROTOTYPE_LANDMARK: _ClassVar[TaskPrototype]
    TASK_PROTOTYPE_SEGMENTATION: _ClassVar[TaskPrototype]
MODEL_ROLE_UNSPECIFIED: ModelRole
MODEL_ROLE_PRODUCTION: ModelRole
MODEL_ROLE_CANDIDATE: ModelRole
MODEL_ROLE_TRIGGER_DETECTOR: ModelRole
TASK_PROTOTYPE_UNSPECIFIED: TaskPrototype
TASK_PROTOTYPE_CLASSIFICATION: TaskPrototype
TASK_PROTOTYPE_DETECTION: TaskPrototype
TASK_PROTOTYPE_LANDMARK: TaskPrototype
TASK_PROTOTYPE_SEGMENTATION: TaskPrototype

class BoundingBox(_message.Message):
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

class Pose(_message.Message):
    __slots__ = ("x", "y", "heading", "speed")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    HEADING_FIELD_NUMBER: _ClassVar[int]
    SPEED_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    heading: float
    speed: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., heading: _Optional[float] = ..., speed: _Optional[float] = ...) -> None: ...

class Detection(_message.Message):
    __slots__ = ("cls", "confidence", "box", "track_id", "attributes", "attribute_scores", "class_scores", "range_m", "bearing_rad")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AttributeScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class ClassScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CLS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_SCORES_FIELD_NUMBER: _ClassVar[int]
    CLASS_SCORES_FIELD_NUMBER: _ClassVar[int]
    RANGE_M_FIELD_NUMBER: _ClassVar[int]
    BEARING_RAD_FIELD_NUMBER: _ClassVar[int]
    cls: str
    confidence: float
    box: BoundingBox
    track_id: int
    attributes: _containers.ScalarMap[str, str]
    attribute_scores: _containers.ScalarMap[str, float]
    class_scores: _containers.ScalarMap[str, float]
    range_m: float
    bearing_rad: float
    def __init__(self, cls: _Optional[str] = ..., confidence: _Optional[float] = ..., box: _Optional[_Union[BoundingBox, _Mapping]] = ..., track_id: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ..., attribute_scores: _Optional[_Mapping[str, float]] = ..., class_scores: _Optional[_Mapping[str, float]] = ..., range_m: _Optional[float] = ..., bearing_rad: _Optional[float] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DatasetRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("since", "until")
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClassificationOutput(_message.Message):
    __slots__ = ("cls", "probabilities", "attributes", "attribute_scores")
    class ProbabilitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AttributeScoresEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    CLS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTE_SCORES_FIELD_NUMBER: _ClassVar[int]
    cls: str
    probabilities: _containers.ScalarMap[str, float]
    attributes: _containers.ScalarMap[str, str]
    attribute_scores: _containers.ScalarMap[str, float]
    def __init__(self, cls: _Optional[str] = ..., probabilities: _Optional[_Mapping[str, float]] = ..., attributes: _Optional[_Mapping[str, str]] = ..., attribute_scores: _Optional[_Mapping[str, float]] = ...) -> None: ...

class DetectionOutput(_message.Message):
    __slots__ = ("detections",)
    DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    detections: _containers.RepeatedCompositeFieldContainer[Detection]
    def __init__(self, detections: _Optional[_Iterable[_Union[Detection, _Mapping]]] = ...) -> None: ...

class Keypoint(_message.Message):
    __slots__ = ("name", "x", "y", "visible", "confidence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    x: float
    y: float
    visible: bool
    confidence: float
    def __init__(self, name: _Optional[str] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., visible: _Optional[bool] = ..., confidence: _Optional[float] = ...) -> None: ...

class LandmarkOutput(_message.Message):
    __slots__ = ("keypoints",)
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    keypoints: _containers.RepeatedCompositeFieldContainer[Keypoint]
    def __init__(self, keypoints: _Optional[_Iterable[_Union[Keypoint, _Mapping]]] = ...) -> None: ...

class SegmentationOutput(_message.Message):
    __slots__ = ("width", "height", "classes", "mask", "mask_key")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MASK_KEY_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    classes: _containers.RepeatedScalarFieldContainer[str]
    mask: bytes
    mask_key: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., classes: _Optional[_Iterable[str]] = ..., mask: _Optional[bytes] = ..., mask_key: _Optional[str] = ...) -> None: ...

class TaskOutput(_message.Message):
    __slots__ = ("classification", "detection", "landmark", "segmentation")
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    LANDMARK_FIELD_NUMBER: _ClassVar[int]
    SEGMENTATION_FIELD_NUMBER: _ClassVar[int]
    classification: ClassificationOutput
    detection: DetectionOutput
    landmark: LandmarkOutput
    segmentation: SegmentationOutput
    def __init__(self, classification: _Optional[_Union[ClassificationOutput, _Mapping]] = ..., detection: _Optional[_Union[DetectionOutput, _Mapping]] = ..., landmark: _Optional[_Union[LandmarkOutput, _Mapping]] = ..., segmentation: _Optional[_Union[SegmentationOutput, _Mapping]] = ...) -> None: ...

class Uncertainty(_message.Message):
    __slots__ = ("entropy", "margin")
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    entropy: float
    margin: float
    def __init__(self, entropy: _Optional[float] = ..., margin: _Optional[float] = ...) -> None: ...

class TaskPrediction(_message.Message):
    __slots__ = ("task", "prototype", "output", "uncertainty")
    TASK_FIELD_NUMBER: _ClassVar[int]
    PROTOTYPE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    task: str
    prototype: TaskPrototype
    output: TaskOutput
    uncertainty: Uncertainty
    def __init__(self, task: _Optional[str] = ..., prototype: _Optional[_Union[TaskPrototype, str]] = ..., output: _Optional[_Union[TaskOutput, _Mapping]] = ..., uncertainty: _Optional[_Union[Uncertainty, _Mapping]] = ...) -> None: ...
