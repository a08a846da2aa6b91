"""The bridge between the label store (the system of record: queues, leases, majority and review,
datasets) and Label Studio (where people label):

- one project per task, its config generated from the task's schema and regenerated when the
  schema changes; a config edited in Label Studio stops the pushes to that project until it is
  regenerated (`longtail studio regenerate TASK`), since labels made against it may not fit;
- the queue's waiting items pushed in priority order, in batches, with the inference service's
  pre-labels as predictions, up to `max_open` unannotated tasks per project;
- Label Studio's webhooks (annotation created or updated) submitted as labels of the annotating
  user, idempotently; what cannot be a label is refused with its reason (the webhook's answer, the
  log, a metric and GET /rejections), never dropped silently;
- a task whose sample was labelled elsewhere (the CLI, simulated labellers) and needs no more
  labels is deleted from its project at the next sync.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import Counter, Gauge

from longtail.labels.v1 import labels_pb2 as L
from longtail.log import get_logger
from studio_bridge.client import StudioClient, StudioError
from studio_bridge.label_store import LabelStoreClient
from studio_bridge.labelling_config import IMAGE, UnsupportedTask, fingerprint, labelling_config
from studio_bridge.results import AnnotationError, annotation, prediction

log = get_logger(__name__)

PUSHED = Counter("longtail_studio_tasks_pushed_total", "Queue items imported into Label Studio as tasks", ["task"])
CLOSED = Counter("longtail_studio_tasks_closed_total", "Label Studio tasks deleted because their sample was labelled elsewhere", ["task"])
WEBHOOKS = Counter("longtail_studio_webhooks_total", "Label Studio webhooks by outcome (accepted, duplicate, rejected, unknown, unauthorized, unavailable)", ["outcome"])
OPEN = Gauge("longtail_studio_open_tasks", "Pushed tasks not yet annotated, per task", ["task"])
DRIFT = Gauge("longtail_studio_config_drift", "1 while a project's config differs from its task's schema and pushes to it are stopped", ["task"])

MARK = re.compile(r"\[longtail config ([0-9a-f]{16})\]")
ACTIONS = ["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]
IMAGE_TYPES = ("image/png", "image/jpeg")


class WebhookRefused(Exception):
    def __init__(self, status: int, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.outcome, self.reason = status, outcome, reason


@dataclass
class Project:
    task: L.Task
    id: int
    config: str
    description: str
    open: dict[str, int] = field(default_factory=dict)  # sample_id -> Label Studio task id, pushed and not annotated
    known: set[str] = field(default_factory=set)  # every sample with a task in the project (never pushed twice)
    refused: str = ""  # why pushes are stopped (config drift), "" when they run
    cursor: int = 0  # where the next reconciliation continues in `open`


def _description(task: L.Task, config: str) -> str:
    return f"The label store's queue of task {task.name}: {task.description or ''} Managed by longtail's bridge; do not edit the labelling config here. [longtail config {fingerprint(config)}]"


class Bridge:
    def __init__(
        self,
        studio: StudioClient,
        store: LabelStoreClient,
        public_url: str,
        webhook_secret: str,
        image_secret: str = "",
        tasks: list[str] | None = None,
        batch_size: int = 50,
        max_open: int = 200,
        lease_seconds: float = 120.0,
        project_prefix: str = "longtail",
    ) -> None:
        self.studio, self.store = studio, store
        self.public_url = public_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.image_key = (image_secret or webhook_secret).encode()
        self.wanted = set(tasks or [])
        self.batch_size, self.max_open, self.lease_seconds = batch_size, max_open, lease_seconds
        self.project_prefix = project_prefix
        self.projects: dict[str, Project] = {}
        self.users: dict[int, str] = {}
        self.rejections: deque[dict] = deque(maxlen=200)
        self.pending: set[asyncio.Future] = set()  # webhooks still being submitted after their answer

    # -- images ---------------------------------------------------------------------------------
    def signature(self, bucket: str, key: str) -> str:
        return hmac.new(self.image_key, f"{bucket}/{key}".encode(), hashlib.sha256).hexdigest()[:32]

    def image_url(self, sample: L.Sample) -> str:
        return f"{self.public_url}/images/{sample.bucket}/{sample.object_key}?sig={self.signature(sample.bucket, sample.object_key)}"

    # -- projects -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Find or create every task's project and its webhook; rebuild which samples are open
        there from Label Studio itself (the bridge keeps no state of its own)."""
        tasks = await asyncio.to_thread(self.store.tasks)
        existing = {p["title"]: p for p in await self.studio.projects()}
        for task in tasks:
            if self.wanted and task.name not in self.wanted:
                continue
            try:
                config = labelling_config(task)
            except UnsupportedTask as exc:
                log.warning("task not bridged", task=task.name, reason=str(exc))
                continue
            title = f"{self.project_prefix} {task.name}"
            found = existing.get(title)
            if found is None:
                found = await self.studio.create_project(title, config, _description(task, config))
                log.info("label studio project created", task=task.name, project=found["id"])
            project = Project(task, found["id"], found["label_config"], found.get("description") or "")
            await self._ensure_webhook(project)
            for t in await self.studio.tasks(project.id):
                sample_id = (t.get("data") or {}).get("sample_id")
                if sample_id:
                    project.known.add(sample_id)
                    if not t.get("is_labeled") and not t.get("total_annotations"):
                        project.open[sample_id] = t["id"]
            self.projects[task.name] = project
            OPEN.labels(task.name).set(len(project.open))
        log.info("bridge started", projects={n: p.id for n, p in self.projects.items()})

    async def _ensure_webhook(self, project: Project) -> None:
        url = f"{self.public_url}/webhook"
        hooks = await self.studio.webhooks(project.id)
        if not any(h.get("url") == url and h.get("project") == project.id for h in hooks):
            await self.studio.create_webhook(project.id, url, ACTIONS, {"Authorization": f"Bearer {self.webhook_secret}"})

    async def check_config(self, project: Project, task: L.Task, regenerate: bool = False) -> None:
        """Regenerate the config when the task's schema changed; stop pushing when it was edited
        in Label Studio (what the description records no longer matches), until `regenerate`."""
        want = labelling_config(task)
        recorded = MARK.search(project.description)
        edited = recorded is None or recorded.group(1) != fingerprint(project.config)
        if edited and not regenerate:
            project.refused = f"project {project.id}'s labelling config was changed in Label Studio and no longer is the one generated from task {task.name}'s schema: pushes stopped; `longtail studio regenerate {task.name}` writes it again"
        elif fingerprint(project.config) != fingerprint(want) or edited:
            try:
                await self.studio.validate_config(project.id, want)  # a PATCH alone lets labels used by annotations disappear
                updated = await self.studio.update_project(project.id, label_config=want, description=_description(task, want))
            except StudioError as exc:
                project.refused = f"task {task.name}'s schema changed and Label Studio refused the new config ({exc}): pushes stopped until it accepts it (`longtail studio regenerate {task.name}`)"
            else:
                project.config, project.description, project.refused = updated["label_config"], updated.get("description") or "", ""
                log.info("labelling config regenerated", task=task.name, project=project.id)
        else:
            project.refused = ""
        project.task = task
        DRIFT.labels(task.name).set(1 if project.refused else 0)
        if project.refused:
            log.warning("pushes stopped", task=task.name, reason=project.refused)

    async def regenerate(self, task_name: str) -> Project:
        await self.start()
        if task_name not in self.projects:
            raise KeyError(f"no bridged task {task_name!r}; bridged: {', '.join(sorted(self.projects)) or 'none'}")
        project = self.projects[task_name]
        await self.check_config(project, project.task, regenerate=True)
        return project

    # -- sync: config, close, push --------------------------------------------------------------
    async def sync_once(self) -> dict[str, int]:
        tasks = {t.name: t for t in await asyncio.to_thread(self.store.tasks)}
        pushed = {}
        for name, project in self.projects.items():
            if name not in tasks:
                continue
            found = await self.studio.project(project.id)  # its config as Label Studio has it now
            project.config, project.description = found["label_config"], found.get("description") or ""
            await self.check_config(project, tasks[name])
            await self.reconcile(project)
            await self.close_labelled_elsewhere(project)
            pushed[name] = 0 if project.refused else await self.push(project)
            OPEN.labels(name).set(len(project.open))
        return pushed

    async def push(self, project: Project) -> int:
        """Import the highest-priority waiting items not in Label Studio yet, up to max_open."""
        need = self.max_open - len(project.open)
        items: list[L.QueueItem] = []
        token = ""
        while need > len(items):
            page = await asyncio.to_thread(self.store.queue_page, project.task.name, token)
            for item in page.items:
                s = item.sample
                if s.sample_id in project.known or item.leased or s.content_type not in IMAGE_TYPES:
                    continue
                items.append(item)
                if len(items) >= need:
                    break
            token = page.next_page_token
            if not token:
                break
        for start in range(0, len(items), self.batch_size):
            batch = items[start : start + self.batch_size]
            tasks = []
            for item in batch:
                s = item.sample
                task: dict[str, Any] = {"data": {IMAGE: self.image_url(s), "sample_id": s.sample_id, "task": project.task.name, "priority": s.priority}}
                if project.task.name in s.pre_labels:
                    pre = prediction(project.task, s.pre_labels[project.task.name], s.pre_label_model)
                    if pre is not None:
                        task["predictions"] = [pre]
                tasks.append(task)
            answer = await self.studio.import_tasks(project.id, tasks)
            sample_ids = [i.sample.sample_id for i in batch]
            ids = (answer or {}).get("task_ids") or []
            # in import order; a server that does not return them: read them back
            by_sample = dict(zip(sample_ids, ids, strict=True)) if len(ids) == len(batch) else await self._ids(project)
            for sample_id in sample_ids:
                project.known.add(sample_id)
                if sample_id in by_sample:
                    project.open[sample_id] = by_sample[sample_id]
            PUSHED.labels(project.task.name).inc(len(batch))
        if items:
            log.info("tasks pushed", task=project.task.name, pushed=len(items), open=len(project.open))
        return len(items)

    async def _ids(self, project: Project) -> dict[str, int]:
        found = {}
        for t in await self.studio.tasks(project.id):
            sample_id = (t.get("data") or {}).get("sample_id")
            if isinstance(sample_id, str):
                found[sample_id] = t["id"]
        return found

    async def close_labelled_elsewhere(self, project: Project) -> int:
        """Delete the open tasks whose samples need no more labels (labelled through the CLI or
        by simulated labellers, or moved to review)."""
        open_ids = list(project.open)
        closed = 0
        for start in range(0, len(open_ids), 500):
            chunk = open_ids[start : start + 500]
            samples = await asyncio.to_thread(self.store.samples, project.task.name, chunk)
            for s in samples:
                if project.task.name not in s.labelled_tasks:
                    continue
                states = (await asyncio.to_thread(self.store.sample, s.sample_id)).states
                state = next((st for st in states if st.task == project.task.name), None)
                if state is not None and (state.in_review or state.final_label_id or state.labels_done >= max(state.labels_required, 1)):
                    task_id = project.open.pop(s.sample_id)
                    here = await self.studio.task(task_id)
                    if here is not None and here.get("total_annotations"):
                        continue  # annotated here too (its webhook still on the way): kept, it is the record of that work
                    await self.studio.delete_task(task_id)
                    CLOSED.labels(project.task.name).inc()
                    closed += 1
        if closed:
            log.info("tasks closed: labelled elsewhere", task=project.task.name, closed=closed)
        return closed

    # -- webhooks -------------------------------------------------------------------------------
    def authorized(self, header: str) -> bool:
        return hmac.compare_digest(header.encode(), f"Bearer {self.webhook_secret}".encode())

    async def _user(self, completed_by: Any) -> str:
        """The annotating user's login (email) as Label Studio authenticated them."""
        if isinstance(completed_by, dict):
            who = completed_by.get("email") or completed_by.get("username")
            if who:
                return str(who)
            completed_by = completed_by.get("id")
        if not isinstance(completed_by, int):
            raise WebhookRefused(400, "rejected", f"annotation.completed_by: {completed_by!r} names no user")
        if completed_by not in self.users:
            user = await self.studio.user(completed_by)
            self.users[completed_by] = str(user.get("email") or user.get("username") or completed_by)
        return self.users[completed_by]

    async def handle(self, payload: Any) -> dict:
        """A webhook's payload -> a label at the label store. Raises WebhookRefused (status, why)."""
        if not isinstance(payload, dict):
            raise WebhookRefused(400, "rejected", "the body is not a JSON object")
        action = payload.get("action")
        if action not in ACTIONS:
            return {"ignored": action}
        ann, task, project = payload.get("annotation"), payload.get("task"), payload.get("project")
        if not isinstance(ann, dict) or not isinstance(task, dict):
            raise WebhookRefused(400, "rejected", "annotation and task objects are required (send_payload must be on)")
        project_id = project.get("id") if isinstance(project, dict) else task.get("project")
        bridged = next((p for p in self.projects.values() if p.id == project_id), None)
        if bridged is None:
            raise WebhookRefused(404, "unknown", f"project {project_id!r} is not a project of this bridge (bridged: {', '.join(f'{p.id} ({n})' for n, p in self.projects.items())})")
        data: dict = task["data"] if isinstance(task.get("data"), dict) else {}
        sample_id = data.get("sample_id")
        if not isinstance(sample_id, str) or data.get("task") != bridged.task.name:
            raise WebhookRefused(404, "unknown", f"task {task.get('id')!r} of project {project_id} was not pushed by this bridge (no sample_id of task {bridged.task.name} in its data)")
        if ann.get("was_cancelled"):
            return {"ignored": "skipped by the labeller"}
        try:
            user = await self._user(ann.get("completed_by"))
            try:
                output = annotation(bridged.task, ann.get("result"))
            except AnnotationError as exc:
                raise WebhookRefused(422, "rejected", f"annotation {ann.get('id')} of task {task.get('id')}: {exc}") from None
            return await asyncio.to_thread(self._submit, bridged, sample_id, user, ann.get("id"), output)
        except WebhookRefused as exc:
            if exc.status in (409, 422):  # reported; not looked at again until the annotation changes
                bridged.open.pop(sample_id, None)
            raise

    def _submit(self, project: Project, sample_id: str, user: str, annotation_id: Any, output) -> dict:
        name = project.task.name
        key = f"label-studio-annotation-{annotation_id}"
        try:
            lease = self.store.lease(name, user, sample_id, self.lease_seconds)
            if lease is None:
                state = self.store.sample(sample_id)
                mine = [lb for lb in state.labels if lb.task == name and lb.labeller_id.endswith(f":{user}")]
                if mine:  # a retried or updated webhook: the first answer stands
                    return {"label_id": mine[0].label_id, "duplicate": True}
                raise WebhookRefused(409, "rejected", f"sample {sample_id} is not waiting in task {name}'s queue any more (labelled elsewhere, or leased by another labeller): annotation {annotation_id} was not recorded")
            label = L.Label(task=name, sample_id=sample_id, labeller_id=lease.labeller_id, labeller_kind=L.LABELLER_KIND_HUMAN, annotation=output)
            try:
                done = self.store.submit(lease.lease_id, key, label)
            except grpc.RpcError as exc:
                self.store.release(lease.lease_id, f"label refused: {exc.details()}")
                raise
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND):
                raise WebhookRefused(422, "rejected", f"the label store refused annotation {annotation_id}: {exc.details()}") from None
            raise WebhookRefused(503, "unavailable", f"the label store did not take annotation {annotation_id}: {exc.code().name} {exc.details()}") from None
        project.open.pop(sample_id, None)
        OPEN.labels(name).set(len(project.open))
        return {"label_id": done.label.label_id, "duplicate": done.duplicate, "labeller_id": done.label.labeller_id}

    async def process(self, payload: Any) -> dict:
        """`handle`, with the outcome counted and a refusal recorded (GET /rejections, the log)."""
        try:
            answer = await self.handle(payload)
        except WebhookRefused as exc:
            self.refused(exc.status, exc.outcome, exc.reason, payload)
            raise
        WEBHOOKS.labels("ignored" if "ignored" in answer else "duplicate" if answer.get("duplicate") else "accepted").inc()
        return answer

    async def reconcile(self, project: Project, limit: int = 50) -> int:
        """Annotations whose webhook never arrived (the bridge was down, or slower than Label
        Studio's 1 s timeout: it does not retry): up to `limit` open tasks are looked at per sync,
        in turn, and an annotation found is submitted as its webhook would have been."""
        recorded = 0
        open_tasks = list(project.open.items())
        start = project.cursor % len(open_tasks) if open_tasks else 0
        window = (open_tasks[start:] + open_tasks[:start])[:limit]
        project.cursor = start + len(window)
        for sample_id, task_id in window:
            task = await self.studio.task(task_id)
            if task is None:  # deleted in Label Studio by hand
                project.open.pop(sample_id, None)
                continue
            if not task.get("total_annotations"):
                continue
            annotations = [a for a in await self.studio.annotations(task_id) if not a.get("was_cancelled")]
            if not annotations or sample_id not in project.open:
                continue
            payload = {"action": "ANNOTATION_CREATED", "annotation": annotations[-1], "task": task, "project": {"id": project.id}}
            try:
                await self.process(payload)
                recorded += 1
            except WebhookRefused:
                pass  # reported; fixing it in Label Studio sends ANNOTATION_UPDATED
        if recorded:
            log.info("annotations recorded without their webhook", task=project.task.name, recorded=recorded)
        return recorded

    def refused(self, status: int, outcome: str, reason: str, payload: Any) -> None:
        WEBHOOKS.labels(outcome).inc()
        log.warning("webhook refused", status=status, reason=reason)
        self.rejections.append({"status": status, "reason": reason, "action": payload.get("action") if isinstance(payload, dict) else None})
