"""The fault matrix: a short run of the whole loop (`drills.pipeline.Pipeline`, fixed seed) during
which every service and the infrastructure they keep state in are killed with -9, one after
another, and started again.

`fault_matrix(size, faults=True)` kills, in this order: during the drive the gateway, the
trigger-evaluator, map-vision, the label store, inference and Triton; while the labellers submit,
PostgreSQL (the label store's database); during the training run, the trainer. With
`faults=False` the same run, undisturbed.

At the end it counts, from the topics, the label store, the dataset manifest and the model
repository: acknowledged frames missing or stored twice, fires per trigger, acknowledged uploads
missing in the label store, pre-labels, labels (and label events repeated), dataset entries (and
duplicates), the run's status and how many versions it published. `compare()` puts an undisturbed
and a disturbed report side by side.
"""

from __future__ import annotations

import json
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from drills.fleet import TopicWatch
from drills.pipeline import Fault, Pipeline

# Killed in this order (the phase each belongs to: drive, labelling, training).
DRIVE_FAULTS = ("gateway", "trigger-evaluator", "map-vision", "label-store", "inference", "triton")
FAULT_ORDER = (*DRIVE_FAULTS, "postgres", "trainer")
# Counts a kill may change without anything lost: a batch resent after its ack was lost and an
# outbox event published again (at-least-once; idempotent downstream), the trainer's restarts, and
# how long the pre-labels took (a killed consumer's partitions wait for its session to time out).
NOT_DETERMINISTIC = {"frames_stored_twice", "label_events_repeated", "run_restarts", "prelabels_done_s"}


@dataclass
class MatrixSize:
    cars: int = 4
    seconds: float = 30.0  # of driving, paced to the wall clock (the drive's faults land in it)
    fps: float = 5.0
    seed: int = 0
    epochs: int = 2
    down_s: float = 1.0  # how long a killed part stays dead before the drill starts it again


@dataclass
class LoopCounts:
    frames_acked: int = 0
    frames_stored: int = 0  # distinct frames of the run's cars on fleet.telemetry.v1
    acked_frames_missing: int = 0  # must be 0
    frames_stored_twice: int = 0  # a batch resent after its ack was lost (harmless downstream)
    fires: dict[str, int] = field(default_factory=dict)  # trigger -> fires (edge: the cars' count; fleet: decided on triggers.fired.v1)
    fires_decided_twice: int = 0  # a fleet-side fire id decided two different ways (must be 0)
    uploads_acked: int = 0  # distinct snapshots the gateway acknowledged to the cars
    upload_errors: int = 0  # uploads a car gave up
    samples: int = 0  # of the acknowledged uploads, registered in the label store
    uploads_missing: int = 0  # acknowledged, not registered (must be 0)
    prelabelled: int = 0  # samples with a pre-label on inference.results.v1
    prelabels_done_s: float = 0.0  # from the end of the drive until every upload had its pre-label
    labels: int = 0  # labels the labellers submitted
    labels_in_events: int = 0  # distinct labels on labels.labels.v1 for the run's samples
    label_events_repeated: int = 0  # the same label announced again (a redelivery; idempotent downstream)
    labelled_samples: int = 0
    dataset_entries: int = 0  # sample lines of the dataset version's manifest
    dataset_duplicates: int = 0  # must be 0
    dataset_missing: int = 0  # labelled samples not in the dataset (must be 0)
    run_status: str = ""
    run_restarts: int = 0
    versions_published: int = 0  # of the run's model line besides its v1 (must be 1)
    metrics: dict[str, float] = field(default_factory=dict)  # the run's validation metrics


@dataclass
class MatrixReport:
    run: str
    size: MatrixSize
    disturbed: bool
    faults: list[Fault] = field(default_factory=list)
    counts: LoopCounts = field(default_factory=LoopCounts)
    wall_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def fault_matrix(size: MatrixSize | None = None, faults: bool = True, say: Callable[[str], None] = print) -> MatrixReport:
    """One run of the loop on the local infrastructure (started if it is not running; left
    running); the services are this run's processes, stopped at the end."""
    size = size or MatrixSize()
    started = time.monotonic()
    with Pipeline(size.seed, say, size.down_s) as loop:
        report = MatrixReport(loop.run, size, faults)
        c = report.counts
        # -- drive: the cars stream and upload; six parts die one after another
        schedule = [(0.1 + 0.75 * i / len(DRIVE_FAULTS), target) for i, target in enumerate(DRIVE_FAULTS)] if faults else []

        def progress(_sim_report, fraction: float) -> None:
            while schedule and fraction >= schedule[0][0]:
                loop.kill(schedule.pop(0)[1], "drive")

        sim_report = loop.drive(size.cars, size.seconds, size.fps, progress)
        loop.wait_for_faults()
        drive_done = time.monotonic()
        uploaded = loop.uploaded(sim_report)
        c.frames_acked, c.upload_errors, c.uploads_acked = sim_report.frames_acked, sim_report.upload_errors, len(uploaded)
        say(f"drill: drive done, {sim_report.frames:,} frames ({sim_report.frames_acked:,} acknowledged), {len(uploaded)} uploads acknowledged, {sim_report.upload_errors} given up")
        samples = loop.wait_for_samples(uploaded)

        # -- labelling: half, then PostgreSQL dies and the labellers go on
        c.labels = loop.label(limit=max(1, len(samples) // 2))
        if faults:
            loop.kill("postgres", "labelling")  # the labellers below submit while it restarts
        c.labels += loop.label()
        loop.wait_for_faults()

        # -- a dataset version and a training run; the trainer dies in its training phase
        dataset = loop.dataset(uploaded)

        def in_training(run) -> None:
            from longtail.models.v1 import trainer_pb2 as T

            if faults and run.phase == T.RUN_PHASE_TRAINING and "trainer" not in {f.target for f in loop.faults} and not loop.killing():
                loop.kill("trainer", "training")

        done = loop.train(dataset, size.epochs, in_training)
        loop.wait_for_faults()
        c.prelabels_done_s = _prelabels_done(loop.watches["prelabels"], uploaded, drive_done)
        _count(report, loop, sim_report, uploaded, dataset, done)
        report.faults = list(loop.faults)
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def _prelabels_done(watch: TopicWatch, uploaded: set[str], since: float, patience: float = 180.0) -> float:
    """Seconds from `since` until every upload had a pre-label (-1: not within `patience` of now).
    Inference restarted by kill -9 gets its partitions back only when the broker has given up on
    the dead member (the consumer session timeout, 45 s by default)."""
    deadline = time.monotonic() + patience
    while not uploaded <= {r.snapshot_id for r in list(watch.records)}:
        if time.monotonic() > deadline:
            return -1.0
        time.sleep(0.5)
    found = [t for r, t in zip(list(watch.records), list(watch.arrivals), strict=False) if r.snapshot_id in uploaded]
    return round(max(0.0, max(found) - since), 1)


def _count(report: MatrixReport, loop: Pipeline, sim_report, uploaded: set[str], dataset, run) -> None:
    from longtail import model_repo
    from longtail.models.v1 import trainer_pb2 as T

    c, watches = report.counts, loop.watches
    time.sleep(3.0)  # the last records on their way to the watches
    frames = [(e.vehicle_id, f.frame_id) for e in watches["telemetry"].records for f in e.frames]
    c.frames_stored = len(set(frames))
    c.frames_stored_twice = len(frames) - len(set(frames))
    c.acked_frames_missing = max(0, c.frames_acked - c.frames_stored)
    edge, fleet = loop.trigger_ids
    c.fires[edge] = sim_report.fires.get(edge, 0)
    decisions: dict[str, set] = {}
    for f in watches["fired"].records:
        if f.trigger_id == fleet:
            decisions.setdefault(f.fire_id, set()).add((f.upload_requested, f.suppressed_reason))
    c.fires[fleet] = len(decisions)
    c.fires_decided_twice = sum(len(d) > 1 for d in decisions.values())
    ids = [s.sample_id for s in loop.samples()]
    c.samples = len(set(ids) & uploaded)
    c.uploads_missing = len(uploaded - set(ids))
    c.prelabelled = len({r.snapshot_id for r in watches["prelabels"].records} & uploaded)
    events = [e.label for e in watches["labels"].records if e.label.sample_id in uploaded]
    c.labels_in_events = len({e.label_id for e in events})
    c.label_events_repeated = len(events) - c.labels_in_events
    c.labelled_samples = len({e.sample_id for e in events})
    manifest = [json.loads(line_) for line_ in loop.stack.objects.get(dataset.manifest_key).decode().splitlines() if line_.strip()]
    entries = Tally(m["sample_id"] for m in manifest if "sample_id" in m)
    c.dataset_entries = sum(entries.values())
    c.dataset_duplicates = sum(n - 1 for n in entries.values())
    c.dataset_missing = len({e.sample_id for e in events} - set(entries))
    c.run_status = T.RunStatus.Name(run.status).removeprefix("RUN_STATUS_")
    c.run_restarts = int(run.metrics.get("run/restarts", 0))
    c.versions_published = len([v for v in model_repo.list_versions(loop.stack.objects, loop.line) if v > 1])
    c.metrics = {k: round(v, 4) for k, v in sorted(run.metrics.items()) if k.startswith("val/")}


def compare(undisturbed: MatrixReport, disturbed: MatrixReport) -> list[tuple[str, object, object]]:
    """The two runs' counts side by side (fires per trigger under the trigger's kind)."""
    rows = []
    a, b = asdict(undisturbed.counts), asdict(disturbed.counts)
    for key in a:
        if key == "fires":
            for kind in ("edge", "fleet"):
                rows.append((f"fires ({kind} trigger)", next((v for k, v in a[key].items() if k.endswith(kind)), 0), next((v for k, v in b[key].items() if k.endswith(kind)), 0)))
        elif key == "metrics":
            for m in sorted(set(a[key]) | set(b[key])):
                rows.append((m, a[key].get(m), b[key].get(m)))
        else:
            rows.append((key, a[key], b[key]))
    return rows
