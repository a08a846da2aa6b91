"""The fleet simulator: a seeded procedural world (`world`), its camera (`render`), the bootstrap
perception model trained on common cases only (`bootstrap`), and the simulated fleet
(`fleet`, `car_client`) that drives it through the real gateway.

Modules are imported explicitly (``from fleet_sim.world import World``); importing this package
pulls in nothing heavy.
"""
