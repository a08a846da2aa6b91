"""trigger-evaluator: the trigger catalog (API + compacted topic), backtests, yield accounting,
and fleet-side evaluation of triggers over the telemetry stream."""
