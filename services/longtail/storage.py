"""Object store client on the `minio` SDK (any S3 endpoint: versitygw locally, S3/MinIO in prod).

Content is stored under its sha256, so a retried upload writes nothing new and returns the same
key: puts are idempotent and at-least-once delivery never duplicates an object.
Layout: snapshots/, datasets/ (immutable manifests), models/ (a Triton model repository).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

from minio import Minio
from minio.error import S3Error

from longtail import metrics
from longtail.config import S3Settings

SNAPSHOTS = "snapshots/"
DATASETS = "datasets/"
MODELS = "models/"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_key(prefix: str, digest: str, suffix: str = "") -> str:
    """Deterministic key: <prefix><aa>/<sha256><suffix> (the 2-char fan-out keeps listings short)."""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return f"{prefix}{digest[:2]}/{digest}{suffix}"


@dataclass(frozen=True)
class PutResult:
    key: str
    sha256: str
    size: int
    created: bool  # False when the object was already there (an idempotent retry)


class ObjectStore:
    def __init__(self, settings: S3Settings, service: str = "longtail") -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.service = service
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key,
            secure=settings.secure,
            region=settings.region,
        )

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:  # created concurrently
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
            return True
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound", "NotFound"):
                return False
            raise

    def put_content(
        self,
        data: bytes,
        prefix: str,
        suffix: str = "",
        content_type: str = "application/octet-stream",
        expected_sha256: str | None = None,
    ) -> PutResult:
        """Store bytes under their content hash; a second put of the same bytes stores nothing."""
        digest = sha256_hex(data)
        if expected_sha256 is not None and expected_sha256 != digest:
            raise ValueError(f"sha256 mismatch: declared {expected_sha256}, content is {digest}")
        key = content_key(prefix, digest, suffix)
        if self.exists(key):
            metrics.OBJECTS_PUT.labels(self.service, "existing").inc()
            return PutResult(key, digest, len(data), created=False)
        self._write(key, data, content_type, {"sha256": digest}, "created")
        return PutResult(key, digest, len(data), created=True)

    def put_at(self, key: str, data: bytes, content_type: str = "application/octet-stream", metadata: dict[str, str] | None = None) -> None:
        """Write at a chosen key (model repository files, whose paths Triton dictates)."""
        self._write(key, data, content_type, metadata, "written")

    def _write(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None, outcome: str) -> None:
        meta: dict[str, str | list[str] | tuple[str]] | None = dict(metadata) if metadata is not None else None  # minio's metadata type
        self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type, metadata=meta)
        metrics.OBJECTS_PUT.labels(self.service, outcome).inc()  # created/existing: content-addressed; written: at a chosen key
        metrics.OBJECT_BYTES.labels(self.service).inc(len(data))

    def put_json(self, prefix: str, document: Any) -> PutResult:
        """Immutable JSON document (e.g. a dataset manifest) under the hash of its canonical form."""
        data = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        return self.put_content(data, prefix, ".json", "application/json")

    def get(self, key: str, bucket: str = "") -> bytes:
        """The object's bytes; `bucket` defaults to this store's (events may name another)."""
        response = self.client.get_object(bucket or self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def list(self, prefix: str) -> list[str]:
        return [o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)]

    def delete(self, key: str) -> None:
        """Remove an object (nothing happens when it is not there)."""
        self.client.remove_object(self.bucket, key)
