"""A training job's contract with the trainer service: its input and outputs in the object store.

The trainer service prepares a run (datasets, rehearsal frames, the network with its fresh heads),
then hands the optimisation to a backend (`trainer.backends`). With the `torchrun` and
`kubernetes` backends the job is another process, possibly on other machines, so everything it
needs and everything it returns goes through the object store, under `trainer/jobs/<run id>/`:

- `input.pt`: the network's configuration (tasks, channels, camera) and initial weights, the
  training frames and their encoded targets (`fitting.encode_targets`), the hyperparameters;
- `checkpoint.pt`: the last finished epoch (`fitting.fit`'s state), written by rank 0 after every
  epoch, read at start by every rank: a restarted job goes on from there;
- `progress.json`: epoch, steps done, the epoch's loss, restarts (what `GetRun` shows meanwhile);
- `output.pt`: the trained weights, the per-epoch losses and the job's report (world size,
  device, samples/s, each rank's weight hash).

Every file is a `torch.save` of tensors and plain values, read with `weights_only=True` (no
pickled code crosses the boundary). The job needs object-store credentials and nothing else: no
Kafka, label store or registry; evaluation, the gate and publishing stay in the trainer service.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import torch

from longtail.model.network import MultiTaskNet
from longtail.storage import ObjectStore

PREFIX = "trainer/jobs"
INPUT, CHECKPOINT, PROGRESS, OUTPUT = "input.pt", "checkpoint.pt", "progress.json", "output.pt"


def key(run_id: str, name: str) -> str:
    return f"{PREFIX}/{run_id}/{name}"


@dataclass
class JobInput:
    run_id: str
    network: dict[str, Any]  # tasks (TaskSpec dicts), channels, camera_hfov_deg
    weights: dict[str, torch.Tensor]  # the initial state dict (fresh heads, copied base)
    images: torch.Tensor  # uint8 [N, H, W, 3]
    targets: dict[str, dict[str, torch.Tensor]]
    hyper: dict[str, Any]  # epochs, batch_size, lr, seed, train_heads

    @classmethod
    def of(cls, run_id: str, model: MultiTaskNet, images: Any, targets: dict[str, dict[str, torch.Tensor]], **hyper: Any) -> JobInput:
        network = model.config()
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return cls(run_id, network, weights, torch.as_tensor(images), targets, dict(hyper))

    def build(self) -> MultiTaskNet:
        """The network as the service built it, with its initial weights."""
        model = MultiTaskNet.from_config(self.network)
        model.load_state_dict(self.weights)
        return model

    def identity(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed (not the world size: the global batch and the
        schedule do not depend on it)."""
        return {"run_id": self.run_id, "network": self.network, "hyper": self.hyper, "samples": int(self.images.shape[0])}


def to_bytes(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def from_bytes(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def write_input(store: ObjectStore, job: JobInput) -> None:
    document = {"run_id": job.run_id, "network": json.dumps(job.network), "hyper": json.dumps(job.hyper), "weights": job.weights, "images": job.images, "targets": job.targets}
    store.put_at(key(job.run_id, INPUT), to_bytes(document))


def read_input(store: ObjectStore, run_id: str) -> JobInput:
    try:
        data = store.get(key(run_id, INPUT))
    except Exception as exc:  # noqa: BLE001 - S3Error and connection errors alike: say which object
        raise FileNotFoundError(f"the input of run {run_id} is not in the object store ({store.bucket}/{key(run_id, INPUT)}): {exc}") from exc
    doc = from_bytes(data)
    return JobInput(doc["run_id"], json.loads(doc["network"]), doc["weights"], doc["images"], doc["targets"], json.loads(doc["hyper"]))


def write_progress(store: ObjectStore, run_id: str, progress: dict[str, Any]) -> None:
    store.put_at(key(run_id, PROGRESS), json.dumps(progress).encode(), "application/json")


def read_progress(store: ObjectStore, run_id: str) -> dict[str, Any] | None:
    if not store.exists(key(run_id, PROGRESS)):
        return None
    return json.loads(store.get(key(run_id, PROGRESS)))


def write_output(store: ObjectStore, run_id: str, weights: dict[str, torch.Tensor], history: list[dict[str, float]], report: dict[str, Any]) -> None:
    store.put_at(key(run_id, OUTPUT), to_bytes({"weights": {k: v.detach().cpu() for k, v in weights.items()}, "history": json.dumps(history), "report": json.dumps(report)}))


def read_output(store: ObjectStore, run_id: str) -> tuple[dict[str, torch.Tensor], list[dict[str, float]], dict[str, Any]]:
    doc = from_bytes(store.get(key(run_id, OUTPUT)))
    return doc["weights"], json.loads(doc["history"]), json.loads(doc["report"])


def clear(store: ObjectStore, run_id: str, keep_output: bool = False) -> None:
    """Remove a job's files (a run that starts again starts fresh; a finished one leaves nothing)."""
    for name in (INPUT, CHECKPOINT, PROGRESS) + (() if keep_output else (OUTPUT,)):
        store.delete(key(run_id, name))
