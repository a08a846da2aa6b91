"""Backtests of map_disagreement() see the map the fleet worker sees (else it could never fire)."""

from __future__ import annotations

from longtail.fleet.v1 import events_pb2 as FE
from longtail.triggerlang import EvalContext, FiringOptions, compile_trigger
from longtail.triggers.v1 import triggers_pb2 as S

from trigger_evaluator.backtest import run_backtest


def batches(vehicles=3, frames=20):
    out = []
    for v in range(vehicles):
        event = FE.TelemetryBatchEvent(vehicle_id=f"car-{v}")
        for i in range(1, frames + 1):
            f = event.frames.add(frame_id=f"car-{v}:{i}", vehicle_id=f"car-{v}", sequence=i)
            f.captured_at.FromSeconds(1_700_000_000 + i)
            f.ego.x = float(i)  # the map below has a stop sign in view from x >= 15, which vision misses
        out.append(event)
    return out


def test_map_disagreement_fires_in_a_backtest_only_with_the_map():
    trigger = compile_trigger("map_disagrees(stop_sign, kind=missing)", FiringOptions(mode="rising_edge"), "map", 1)
    spec = S.TriggerSpec(upload_budget=100)

    def map_context(ego):
        return EvalContext(map_features=[("stop_sign", 20.0, 0.1)] if ego.x >= 15 else [])

    assert run_backtest(trigger, spec, batches()).fires == 0
    result = run_backtest(trigger, spec, batches(), map_context=map_context)
    assert (result.fires, result.distinct_vehicles, result.frames_evaluated) == (3, 3, 60)
    assert {s.frame_id.split(":")[1] for s in result.sample} == {"15"}
