"""The fault matrix (issue #19) at a chosen size: drills.matrix runs the whole loop undisturbed,
then again (same seed) while every service, Triton and PostgreSQL are killed with -9 one after
another and started again. The baseline is the undisturbed run: the table puts every count side
by side; the verdict says whether everything acknowledged is there exactly once and where the
runs differ (deterministic figures must not).

`--matrix-cars` and `--matrix-seconds` set the size (the integration test runs 4 cars for 30 s).
"""

from __future__ import annotations

from drills.matrix import NOT_DETERMINISTIC, MatrixSize, compare, fault_matrix


def run(args, console) -> dict:
    say = lambda m: console.print(f"[magenta]faults[/] {m}")  # noqa: E731
    size = MatrixSize(cars=args.matrix_cars, seconds=args.matrix_seconds)
    undisturbed = fault_matrix(size, faults=False, say=say)
    disturbed = fault_matrix(size, faults=True, say=say)
    rows = compare(undisturbed, disturbed)
    differing = [name for name, a, b in rows if a != b and name not in NOT_DETERMINISTIC]
    c = disturbed.counts
    lost = c.acked_frames_missing + c.uploads_missing + c.dataset_missing + c.dataset_duplicates + c.fires_decided_twice + (c.prelabelled != c.uploads_acked) + (c.versions_published != 1)
    return {
        "title": f"fault matrix: {size.cars} cars for {size.seconds:g} s, every service, Triton and PostgreSQL killed -9 in turn",
        "columns": ["", "undisturbed", "with faults"],
        "rows": [[name, a, b] for name, a, b in rows],
        "more_tables": [{"title": "faults", "columns": ["killed", "phase", "at (s)", "serving again after (s)"], "rows": [[f.target, f.phase, f.at_s, f.back_after_s] for f in disturbed.faults]}],
        "verdict": [
            f"{'OK' if not lost and not differing and c.run_status == 'SUCCEEDED' else 'FAILED'}: lost or duplicated {lost}; deterministic figures differing: {', '.join(differing) or 'none'}; run {c.run_status}",
            f"wall time {undisturbed.wall_s:.0f} s undisturbed, {disturbed.wall_s:.0f} s with faults",
        ],
        "report": {"undisturbed": undisturbed.as_dict(), "disturbed": disturbed.as_dict()},
    }
