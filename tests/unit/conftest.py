"""Fakes shared by the unit tests of several services."""

from __future__ import annotations

import pytest
from minio.error import S3Error


class MemoryStore:
    bucket = "longtail"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_at(self, key, data, content_type="application/octet-stream", metadata=None):
        self.objects[key] = bytes(data)

    def get(self, key, bucket=""):
        if key not in self.objects:
            raise S3Error(None, "NoSuchKey", "missing", key, "", "")
        return self.objects[key]

    def exists(self, key):
        return key in self.objects

    def list(self, prefix):
        return sorted(k for k in self.objects if k.startswith(prefix))

    def delete(self, key):
        self.objects.pop(key, None)


@pytest.fixture
def store() -> MemoryStore:
    """An in-memory stand-in for longtail.storage.ObjectStore (the methods model_repo and the trainer use)."""
    return MemoryStore()
