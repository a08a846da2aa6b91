"""Content-addressed object store against the real S3 server (versitygw)."""

import os

import pytest

from longtail.config import S3Settings, load
from longtail.storage import SNAPSHOTS, ObjectStore, sha256_hex


@pytest.fixture
def store(s3):
    store = ObjectStore(load(S3Settings), service="test")
    store.ensure_bucket()
    return store


def test_put_twice_stores_once_and_get_returns_the_same_bytes(store):
    data = os.urandom(300_000)
    first = store.put_content(data, SNAPSHOTS, ".png", "image/png")
    second = store.put_content(data, SNAPSHOTS, ".png", "image/png")
    assert first.created and not second.created
    assert first.key == second.key == f"snapshots/{first.sha256[:2]}/{first.sha256}.png"
    assert store.list(f"snapshots/{first.sha256[:2]}/{first.sha256}") == [first.key]
    assert store.get(first.key) == data


def test_declared_hash_must_match_and_nothing_is_stored_otherwise(store):
    data = os.urandom(1000)
    wrong = sha256_hex(b"something else")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        store.put_content(data, SNAPSHOTS, expected_sha256=wrong)
    assert not store.exists(f"snapshots/{sha256_hex(data)[:2]}/{sha256_hex(data)}")


def test_json_manifest_key_is_independent_of_key_order(store):
    a = store.put_json("datasets/", {"b": 1, "a": [1, 2]})
    b = store.put_json("datasets/", {"a": [1, 2], "b": 1})
    assert a.key == b.key and not b.created
