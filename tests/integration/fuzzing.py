"""Random protobuf messages for fuzzing the services' entry points (hypothesis strategies built
from the message descriptors): every field set or not, scalars anywhere in their type's range
(NaN and infinities included, strings empty or long or odd, enum numbers that do not exist),
repeated fields and maps of a few entries, nested messages a few levels deep."""

from __future__ import annotations

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MAX_DEPTH = 3
ODD_STRINGS = ["", " ", "stop_sign", "x" * 5000, "../../etc/passwd", "a/b", "\x00", "é😀", "DROP TABLE samples;", "-1", "1e309"]

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    # Mostly small numbers (ids, counts, limits), sometimes the type's extremes.
    return st.one_of(st.integers(max(lo, -3), min(hi, 1000)), st.sampled_from([lo, hi]), st.integers(lo, hi))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy:
    kind = field.type
    if kind in _INT_RANGES:
        return _integers(*_INT_RANGES[kind])
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return st.floats(allow_nan=True, allow_infinity=True)
    if kind == FieldDescriptor.TYPE_FLOAT:
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=24), st.sampled_from(ODD_STRINGS))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_ENUM:
        numbers = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), st.integers(-2, max(numbers) + 3))  # open enums: unknown numbers too
    raise TypeError(f"no strategy for {field.full_name} (type {kind})")


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Random, valid-shaped instances of the message `descriptor` describes."""
    cls = message_factory.GetMessageClass(descriptor)
    fields = {}
    for field in descriptor.fields:
        strategy = _field(field, depth)
        if strategy is not None:
            fields[field.name] = strategy
    return st.fixed_dictionaries({}, optional=fields).map(lambda values: _build(cls, values))


def _field(field: FieldDescriptor, depth: int) -> st.SearchStrategy | None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if depth >= MAX_DEPTH:
            return None
        if field.message_type.GetOptions().map_entry:
            key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
            value_strategy = messages(value.message_type, depth + 1) if value.type == FieldDescriptor.TYPE_MESSAGE else _scalar(value)
            return st.dictionaries(_scalar(key), value_strategy, max_size=3)
        one = messages(field.message_type, depth + 1)
        return st.lists(one, max_size=3) if _repeated(field) else one
    one = _scalar(field)
    return st.lists(one, max_size=4) if _repeated(field) else one


def _repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _build(cls, values: dict) -> Message:
    message = cls()
    for name, value in values.items():
        field = cls.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            for k, v in value.items():
                if isinstance(v, Message):
                    target[k].CopyFrom(v)
                else:
                    target[k] = v
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if _repeated(field):
                for item in value:
                    target.add().CopyFrom(item)
            else:
                target.CopyFrom(value)
        elif _repeated(field):
            target.extend(value)
        else:
            setattr(message, name, value)
    return message
