"""`longtail demo`'s options default to DemoConfig's values: one set of defaults, whichever way the
demo is started (the CLI, `loop.run` from a test or a notebook)."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest

from demo.loop import DemoConfig
from longtail_cli import app as cli

# CLI option -> DemoConfig field, where the names differ
RENAMED = {"duration": "duration_s", "shadow_s": "shadow_s"}
CLI_ONLY = {"smoke", "seeds", "seed", "out", "cases", "label_studio"}


def test_every_demo_option_defaults_to_the_config_default():
    config = DemoConfig()
    names = {f.name for f in fields(DemoConfig)}
    checked = 0
    for name, param in inspect.signature(cli.demo).parameters.items():
        if name in CLI_ONLY:
            continue
        field = RENAMED.get(name, name)
        assert field in names, f"--{name} has no DemoConfig field"
        assert param.default.default == getattr(config, field), f"--{name}: CLI {param.default.default!r} != DemoConfig {getattr(config, field)!r}"
        checked += 1
    assert checked >= 15
    assert config.seeds == [0] and str(config.out) == inspect.signature(cli.demo).parameters["out"].default.default


def test_cases_default_to_the_config_default_and_unknown_ones_are_refused():
    assert inspect.signature(cli.demo).parameters["cases"].default.default.split(",") == DemoConfig().cases
    DemoConfig(cases=["occluded", "except_right_turn", "handheld"]).validate()
    DemoConfig(max_iterations=1).validate()  # --new-task-at only matters with --new-task
    with pytest.raises(ValueError, match="new-task-at"):
        DemoConfig(max_iterations=1, new_task="caution_lights").validate()
    for bad in (["sunroof"], [], ["handheld", "handheld"]):
        with pytest.raises(ValueError, match="--cases"):
            DemoConfig(cases=bad).validate()
