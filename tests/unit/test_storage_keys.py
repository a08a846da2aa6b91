import hashlib

import pytest

from longtail.storage import content_key, sha256_hex


def test_content_key_is_deterministic_and_fanned_out():
    digest = sha256_hex(b"frame")
    assert digest == hashlib.sha256(b"frame").hexdigest()
    assert content_key("snapshots/", digest, ".png") == f"snapshots/{digest[:2]}/{digest}.png"
    assert content_key("snapshots", digest) == content_key("snapshots/", digest)


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, hashlib.sha256(b"x").hexdigest().upper()])
def test_content_key_refuses_what_is_not_a_digest(bad):
    with pytest.raises(ValueError):
        content_key("snapshots/", bad)
