"""The synthetic world: a seeded procedural town with the long tail in it (`world`), its camera
(`render`), and labelled frames sampled from it (`frames`). A library of the core, torch-free:
the simulated fleet drives it, the trainer draws fallback and rehearsal frames from it, map-vision
seeds its map from it, the demo builds its suites from it.

Modules are imported explicitly (``from longtail.synthetic.world import World``).
"""
