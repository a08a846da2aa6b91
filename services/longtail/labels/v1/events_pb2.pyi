from longtail.labels.v1 import labels_pb2 as _labels_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SampleRegistered(_message.Message):
    __slots__ = ("sample",)
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    sample: _labels_pb2.Sample
    def __init__(self, sample: _Optional[_Union[_labels_pb2.Sample, _Mapping]] = ...) -> None: ...

class LabelCreated(_message.Message):
    __slots__ = ("label", "provenance")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PROVENANCE_FIELD_NUMBER: _ClassVar[int]
    label: _labels_pb2.Label
    provenance: _labels_pb2.Provenance
    def __init__(self, label: _Optional[_Union[_labels_pb2.Label, _Mapping]] = ..., provenance: _Optional[_Union[_labels_pb2.Provenance, _Mapping]] = ...) -> None: ...

class DatasetPublished(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: _labels_pb2.DatasetVersion
    def __init__(self, dataset: _Optional[_Union[_labels_pb2.DatasetVersion, _Mapping]] = ...) -> None: ...

class SuiteEvaluated(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _labels_pb2.SuiteResult
    def __init__(self, result: _Optional[_Union[_labels_pb2.SuiteResult, _Mapping]] = ...) -> None: ...
