"""The longtail trigger language: parse, type-check and compile trigger expressions, then
evaluate them per car on `longtail.fleet.v1.Frame` messages (on the car, fleet-side and in
backtests alike). See docs/triggers.md.

    trigger = compile_trigger("flicker(stop_sign, window=10, min_toggles=3)",
                              FiringOptions(mode="rising_edge", min_interval_s=30, frames_before=5, frames_after=5),
                              trigger_id="stop-sign-flicker", version=1)
    state = trigger.new_state()            # one per car
    for frame in frames:                   # that car's frames, in order
        fire = trigger.evaluate(state, frame)

Imported on their own: `catalogue` (the built-ins, fields and limits), `vector` (many triggers
over many frames with numpy) and `predicates` (suite predicates over one model prediction).
"""

from longtail.triggerlang.catalogue import BUILTINS, MAX_STATE_ITEMS, MAX_TEMPORAL, MAX_TRACKS, MAX_WINDOW
from longtail.triggerlang.errors import TriggerSyntaxError
from longtail.triggerlang.parser import MAX_DEPTH, MAX_SOURCE_BYTES
from longtail.triggerlang.runtime import (
    EVERY_FRAME,
    MAX_CAPTURE_FRAMES,
    RISING_EDGE,
    CompiledTrigger,
    EvalContext,
    Fire,
    FiringOptions,
    MapExpectation,
    TriggerState,
    compile_trigger,
    fire_id,
    map_expectations,
    validate,
)

__all__ = [
    "BUILTINS",
    "EVERY_FRAME",
    "MAX_CAPTURE_FRAMES",
    "MAX_DEPTH",
    "MAX_SOURCE_BYTES",
    "MAX_STATE_ITEMS",
    "MAX_TEMPORAL",
    "MAX_TRACKS",
    "MAX_WINDOW",
    "RISING_EDGE",
    "CompiledTrigger",
    "EvalContext",
    "Fire",
    "FiringOptions",
    "MapExpectation",
    "TriggerState",
    "TriggerSyntaxError",
    "compile_trigger",
    "fire_id",
    "map_expectations",
    "validate",
]
