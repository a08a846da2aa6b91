"""Read what a service produced during a test: the records of a topic from a timestamp on
(`longtail.kafka.read_time_range`: no consumer group side effects; the integration tests share one
broker and its topics)."""

from __future__ import annotations

import time
from collections.abc import Callable

from longtail import topics
from longtail.kafka import read_time_range


def _read_once(bootstrap: str, topic: topics.Topic, since_ms: int) -> list[tuple[str | None, object]]:
    """(key, value) of every record from `since_ms` to the topic's end; values that do not decode
    as the topic's type are skipped."""
    return list(read_time_range(bootstrap, topic, since_ms, 2**62, keyed=True))


def read_since(bootstrap: str, topic: topics.Topic, since_ms: int, keep: Callable[[str | None, object], bool] = lambda k, v: True, want: int = 0, timeout: float = 60.0) -> list[tuple[str | None, object]]:
    """The (key, value) records of `topic` produced since `since_ms` that `keep` accepts. With
    `want`, reads again until at least that many are there or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        out = [(k, v) for k, v in _read_once(bootstrap, topic, since_ms) if keep(k, v)]
        if len(out) >= want or time.monotonic() > deadline:
            return out
        time.sleep(0.5)
