"""The simulated fleet: cars that drive the synthetic world (`longtail.synthetic`) and talk to the
real gateway (`fleet`, `car_client`), their on-car models (`onboard`), and the bootstrap
perception model trained on common cases only (`bootstrap`).

Modules are imported explicitly (``from fleet_sim.fleet import SimulatedFleet``); importing this
package pulls in nothing heavy.
"""
