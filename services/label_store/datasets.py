"""Dataset versions: deterministic split by sample hash and a canonical manifest.

The manifest is JSON lines: a header line (dataset name, tasks, split fractions, format) and one
line per sample in sample_id order with its split, object location and the resolved label of
every task. It depends only on that selection — not on the version number or the time — so
regenerating it from the frozen selection (`dataset_items`) reproduces its sha256 bit for bit,
and re-running the same selection when nothing changed yields the same hash (no new version).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from google.protobuf import json_format

from longtail.labels.v1 import labels_pb2 as L

FORMAT = 1
DEFAULT_VAL = 0.1
DEFAULT_TEST = 0.1


def fractions(spec: L.SplitSpec) -> tuple[float, float]:
    """(val, test) with the server default when both are 0; ValueError naming the field otherwise."""
    val, test = spec.val_fraction, spec.test_fraction
    if val == 0 and test == 0:
        return DEFAULT_VAL, DEFAULT_TEST
    for name, value in (("split.val_fraction", val), ("split.test_fraction", test)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: {value} is not in [0, 1]")
    if val + test > 1.0:
        raise ValueError(f"split: val_fraction + test_fraction = {val + test} > 1")
    return val, test


def split_of(sample_id: str, val: float, test: float) -> str:
    """A sample's split from the hash of its id: stable across versions and machines."""
    u = int(hashlib.sha256(f"split:{sample_id}".encode()).hexdigest()[:16], 16) / 2**64
    if u < test:
        return "test"
    if u < test + val:
        return "val"
    return "train"


def _line(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def manifest(name: str, tasks: list[str], val: float, test: float, items: Iterable[tuple[L.Sample, str, Mapping[str, L.Label]]]) -> bytes:
    """items: (sample, split, {task: resolved label}), any order; returns the manifest bytes."""
    out = [_line({"dataset": name, "format": FORMAT, "tasks": sorted(tasks), "split": {"val": val, "test": test}})]
    for sample, split, labels in sorted(items, key=lambda it: it[0].sample_id):
        out.append(
            _line(
                {
                    "sample_id": sample.sample_id,
                    "split": split,
                    "bucket": sample.bucket,
                    "object_key": sample.object_key,
                    "content_type": sample.content_type,
                    "labels": {task: {"label_id": label.label_id, "annotation": json_format.MessageToDict(label.annotation, preserving_proto_field_name=True)} for task, label in sorted(labels.items())},
                }
            )
        )
    return b"".join(out)


def manifest_key(name: str, version: int, sha256: str) -> str:
    # The hash in the key means a creator that lost a race for a version number can never
    # overwrite the manifest that version points to.
    return f"datasets/{name}/{version}/manifest-{sha256[:16]}.jsonl"
