"""`longtail triggers validate|explain` (the sub-app the main CLI mounts as `triggers`)."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from longtail_cli.trigger_language import app

runner = CliRunner()


def test_validate_accepts_a_valid_expression_and_prints_the_normalized_form():
    result = runner.invoke(app, ["validate", "flicker(stop_sign,window=10,min_toggles=3)"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: flicker(stop_sign, window=10, min_toggles=3)\n"


def test_validate_rejects_with_line_column_and_caret():
    result = runner.invoke(app, ["validate", "any(stop_sign) and\n  entropi(traffic_light) > 0.8"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == ("error: line 2, column 3: unknown function 'entropi'; did you mean 'entropy'?\n  entropi(traffic_light) > 0.8\n  ^\n")


def test_validate_syntax_error_exit_code():
    result = runner.invoke(app, ["validate", "ego.speed >"])
    assert result.exit_code == 1
    assert "line 1, column 12: unexpected end of expression" in result.stderr
    assert result.stderr.splitlines()[-1] == " " * 11 + "^"


def test_validate_reads_stdin_with_dash():
    result = runner.invoke(app, ["validate", "-"], input="# from a file\nany(d.cls == stop_sign\n    and d.attr.occluded)\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "ok: any(d.cls == stop_sign and d.attr.occluded)\n"
    result = runner.invoke(app, ["validate", "-"], input="any(d.cls == stop_sign\n    and d.colr)\n")
    assert result.exit_code == 1
    assert "line 2, column 11: unknown field 'd.colr'" in result.stderr


def test_explain_shows_defaults_detectors_and_state_bound():
    result = runner.invoke(app, ["explain", 'flicker(stop_sign) and score("occluded_stop_sign@3") > 0.7'])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert 'normalized: flicker(stop_sign) and score("occluded_stop_sign@3") > 0.7' in out
    assert "flicker(stop_sign, window=10, min_toggles=3, min_conf=0)" in out
    assert "detectors:  occluded_stop_sign@3" in out
    assert "state:      at most 7 values per car" in out
    assert runner.invoke(app, ["explain", "nope()"]).exit_code == 1


def test_mounts_as_a_sub_app():
    root = typer.Typer()
    root.add_typer(app, name="triggers")

    @root.command()
    def other() -> None:  # a second command so "triggers" stays a group
        pass

    assert runner.invoke(root, ["triggers", "validate", "ego.speed > 3"]).exit_code == 0
    assert runner.invoke(root, ["triggers", "validate", "ego.speed >> 3"]).exit_code == 1


def test_explain_says_how_the_trigger_evaluator_runs_it():
    columns = runner.invoke(app, ["explain", "flicker(stop_sign) and ego.speed > 3"])
    frame_by_frame = runner.invoke(app, ["explain", "first_seen(stop_sign).distance < 20"])
    assert "fleet-side: column by column" in columns.stdout
    assert "fleet-side: frame by frame" in frame_by_frame.stdout
