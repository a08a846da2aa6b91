"""Keep CPython's cyclic garbage collector off the hot paths of long-running services."""

from __future__ import annotations

import gc


def tune_gc(young_threshold: int = 50_000) -> None:
    """Freeze what start-up built and collect the young generation every `young_threshold`
    allocations instead of every 700.

    Both services that call it allocate many short-lived objects in bursts while holding many
    long-lived ones: the gateway writes to 10,000 sessions per broadcast, the trigger evaluator
    wraps ~100,000 protobuf frames and detections per poll while its tables hold every car's
    trigger state. At the default thresholds the burst's objects, still alive, are promoted and
    soon trigger a full collection that walks every long-lived object: ~0.5 s stalls in the
    gateway at 10,000 cars, and half the variance of the evaluator's per-poll time. With a high
    young threshold the burst dies first (a few MB of garbage waits a little longer); frozen
    start-up objects (modules, the catalog) are never walked."""
    gc.collect()  # nothing already unreachable gets frozen
    gc.freeze()
    gc.set_threshold(young_threshold, 10, 10)
