"""fleet-gateway: the only service cars talk to (sessions, telemetry, commands, snapshot uploads)."""
