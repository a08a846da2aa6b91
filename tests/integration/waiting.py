"""Wait for what a service does in the background (a label written, a task pushed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, what: str = "", interval: float = 0.3) -> T:
    """The first truthy value of `predicate`, polled every `interval` s; fails the test with `what`
    after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting for {what or predicate}"
        time.sleep(interval)
