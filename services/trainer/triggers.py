"""Label-triggered runs: enough new labels for a task start a training run.

`LabelTrigger.on_labels` gets `LabelCreated` events (labels.labels.v1, at-least-once: deduplicated
by label_id). When a task has gathered `threshold` new labels since its last triggered run, it
asks the label store for a new version of the dataset `auto-<task>` (every resolved label of the
task) and queues a run on it — unless a label-triggered run for that task is already queued or
running (then the count keeps growing and triggers again afterwards).
"""

from __future__ import annotations

from collections import OrderedDict

from longtail.common.v1 import common_pb2 as C
from longtail.log import get_logger
from longtail.models.v1 import trainer_pb2 as T

log = get_logger(__name__)
SEEN_MAX = 200_000


class LabelTrigger:
    def __init__(self, trainer, labels, model_name: str, threshold: int, promote: bool = False) -> None:
        self.trainer = trainer
        self.labels = labels
        self.model_name = model_name
        self.threshold = threshold
        self.promote = promote
        self.counts: dict[str, int] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.triggered: list[str] = []  # run ids

    def on_labels(self, events) -> None:
        declared = {d.name for d in self.trainer.declared}
        for e in events:
            if e is None:
                continue
            label = e.label
            if not label.task or label.label_id in self._seen:
                continue
            self._seen[label.label_id] = None
            if len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
            if label.task in declared:
                self.counts[label.task] = self.counts.get(label.task, 0) + 1
        for task, n in sorted(self.counts.items()):
            if n >= self.threshold:
                self._trigger(task)

    def _trigger(self, task: str) -> None:
        origin = f"labels:{task}"
        if self.trainer.busy_with(lambda r: r.triggered_by == origin):
            return
        dataset = self.labels.create_dataset(f"auto-{task}", [task], f"every resolved {task} label (label-triggered run)").dataset
        spec = T.RunSpec(model_name=self.model_name, kind=T.RUN_KIND_MULTITASK, tasks=[task], promote=self.promote, datasets=[C.DatasetRef(name=dataset.name, version=dataset.version)])
        run, _ = self.trainer.submit(spec, triggered_by=origin)
        log.info("run triggered by labels", task=task, labels=self.counts[task], run_id=run.run_id, dataset=f"{dataset.name}@{dataset.version}")
        self.counts[task] = 0
        self.triggered.append(run.run_id)
