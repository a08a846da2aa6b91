"""LabelStoreService: the gRPC API over LabelStore, operator auth on admin writes, metrics, and
the outbox publisher that turns committed changes into Kafka events."""

from __future__ import annotations

import asyncio
import time

import grpc
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from longtail import access, topics
from longtail.grpc_handlers import abort
from longtail.kafka import DeliveryError, Producer
from longtail.labels.v1 import labels_pb2 as L
from longtail.labels.v1 import labels_pb2_grpc
from longtail.log import get_logger
from longtail.registry import LABEL_STORE

from label_store.store import LabelStore
from label_store.tx import StoreError

SERVICE = LABEL_STORE.name
log = get_logger(__name__)

LABELS = Counter("longtail_labelstore_labels_total", "Labels stored (rate = labels/s), by task and labeller kind", ["service", "task", "kind"])
LEASES = Counter("longtail_labelstore_leases_total", "Lease outcomes: granted, empty (queue empty), released, fulfilled, refused", ["service", "task", "outcome"])
QUEUE_DEPTH = Gauge("longtail_labelstore_queue_depth_items", "Items waiting (not leased), by task and queue (label, review)", ["service", "task", "queue"])
LEASED = Gauge("longtail_labelstore_leased_items", "Items under a live lease, by task", ["service", "task"])
SAMPLES = Counter("longtail_labelstore_samples_total", "Sample registrations, by outcome (created, existing)", ["service", "outcome"])
SUITE_PASS = Gauge("longtail_labelstore_suite_pass_ratio", "Pass rate of a suite for a model version (recorded evaluations)", ["service", "suite", "model", "version"])
OUTBOX = Gauge("longtail_labelstore_outbox_events", "Committed events not yet acked by Kafka", ["service"])
KIND = {L.LABELLER_KIND_HUMAN: "human", L.LABELLER_KIND_SIMULATED: "simulated"}


def _seconds(duration) -> float:
    return duration.seconds + duration.nanos / 1e9


class OutboxPublisher:
    """Publishes outbox rows in commit order, deletes them once Kafka acked (at-least-once)."""

    def __init__(self, store: LabelStore, producer: Producer) -> None:
        self.store = store
        self.producer = producer
        self.wake = asyncio.Event()
        self.published = 0

    def drain_once(self) -> int:
        rows = self.store.outbox.batch(1000)
        OUTBOX.labels(SERVICE).set(len(rows))
        if not rows:
            return 0
        for _id, topic, key, value in rows:
            t = topics.by_name(topic)
            self.producer.produce_bytes(topic, key, value, headers=[("content-type", b"application/x-protobuf"), ("message-type", t.value_type.DESCRIPTOR.full_name.encode())])
        self.producer.flush()  # raises DeliveryError: rows stay and are retried
        self.store.outbox.delete([r[0] for r in rows])
        self.published += len(rows)
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(self.drain_once):
                    continue
            except DeliveryError as exc:
                log.warning("outbox publish failed; retrying", error=str(exc))
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("outbox publisher error; retrying")
                await asyncio.sleep(1.0)
            try:
                await asyncio.wait_for(self.wake.wait(), 0.5)
            except TimeoutError:
                pass
            self.wake.clear()


async def _database_unavailable(context, exc: DBAPIError) -> None:
    """The database went away (restarted, failed over, unreachable): UNAVAILABLE, which callers
    retry, rather than UNKNOWN. Other database errors are bugs and stay INTERNAL."""
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        log.warning("database unavailable", error=str(exc.orig or exc)[:300])
        await abort(context, grpc.StatusCode.UNAVAILABLE, "the label store's database is unavailable; retry")
    log.error("database error", error=repr(exc)[:2000])
    await abort(context, grpc.StatusCode.INTERNAL, f"database error: {type(exc.orig or exc).__name__}")


class LabelStoreServicer(labels_pb2_grpc.LabelStoreServiceServicer):
    def __init__(self, store: LabelStore, publisher: OutboxPublisher | None = None) -> None:
        self.store = store
        self.publisher = publisher

    async def _run(self, context, fn, *args):
        try:
            return await asyncio.to_thread(fn, *args)
        except StoreError as exc:
            await abort(context, getattr(grpc.StatusCode, exc.code), str(exc))
        except DBAPIError as exc:
            await _database_unavailable(context, exc)

    def _changed(self) -> None:
        if self.publisher is not None:
            self.publisher.wake.set()

    async def _operator(self, context) -> str:
        """Who changes the catalog (longtail.access checked their role before the call)."""
        return access.caller().subject

    async def _labeller(self, context, claimed: str, review: bool = False) -> str:
        """The labeller is the caller: a labeller id in the request must be theirs; the review
        queue is for reviewers. A bridge (a front end with its own accounts) names the user it
        authenticated, recorded as `<bridge>:<user>`."""
        who = access.caller()
        if who.has(access.BRIDGE) and not who.has(access.LABELLER, access.REVIEWER):
            if not claimed:
                await abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"labeller_id is empty: {who.subject} is a bridge and labels on behalf of the user its front end authenticated")
            if review:
                await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{who.subject} is a bridge: the review queue is for the label store's reviewers")
            return claimed if claimed.startswith(f"{who.subject}:") else f"{who.subject}:{claimed}"
        if claimed and claimed != who.subject:
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"labeller_id {claimed!r} is not the caller {who.subject!r}: labels are submitted as oneself")
        if review and not who.has(access.REVIEWER):
            await abort(context, grpc.StatusCode.PERMISSION_DENIED, f"{who.subject} is not a reviewer: the review queue needs the reviewer role")
        return who.subject

    # -- samples --------------------------------------------------------------------------------
    async def RegisterSample(self, request, context):
        await self._operator(context)
        [(sample, created)] = await self._run(context, self.store.samples.register, [request.sample])
        SAMPLES.labels(SERVICE, "created" if created else "existing").inc()
        self._changed()
        if not created:
            sample, _labels, _states = await self._run(context, self.store.samples.get, request.sample.sample_id)
        return L.RegisterSampleResponse(sample=sample, already_existed=not created)

    async def GetSample(self, request, context):
        sample, labels, states = await self._run(context, self.store.samples.get, request.sample_id)
        return L.GetSampleResponse(sample=sample, labels=labels, states=states)

    async def ListSamples(self, request, context):
        page, token = await self._run(context, self.store.samples.list, request.filter, request.page_size, request.page_token)
        return L.ListSamplesResponse(samples=page, next_page_token=token)

    # -- tasks ----------------------------------------------------------------------------------
    async def UpsertTask(self, request, context):
        operator = await self._operator(context)
        task, created = await self._run(context, self.store.tasks.upsert, request.task)
        log.info("task upserted", task=task.name, created=created, operator=operator)
        return L.UpsertTaskResponse(task=task, created=created)

    async def ListTasks(self, request, context):
        return L.ListTasksResponse(tasks=await self._run(context, self.store.tasks.list))

    async def GetTask(self, request, context):
        task, counts = await self._run(context, self.store.tasks.get, request.name)
        QUEUE_DEPTH.labels(SERVICE, task.name, "label").set(counts.queue_depth)
        return L.GetTaskResponse(task=task, queue_depth=counts.queue_depth, review_depth=counts.review_depth, leased=counts.leased, done=counts.done)

    # -- labelling ------------------------------------------------------------------------------
    async def GetNextTask(self, request, context):
        lease_s = _seconds(request.lease_duration) if request.HasField("lease_duration") else None
        labeller = await self._labeller(context, request.labeller_id, request.review)
        lease, depth = await self._run(context, self.store.queue.next_task, request.task, labeller, lease_s, request.review, request.sample_id)
        LEASES.labels(SERVICE, request.task, "granted" if lease is not None else "empty").inc()
        response = L.GetNextTaskResponse(queue_depth=depth)
        if lease is not None:
            response.lease.CopyFrom(lease)
        return response

    async def SubmitLabel(self, request, context):
        request.label.labeller_id = await self._labeller(context, request.label.labeller_id)
        try:
            label, duplicate = await asyncio.to_thread(self.store.queue.submit_label, request.lease_id, request.idempotency_key, request.label)
        except StoreError as exc:
            LEASES.labels(SERVICE, request.label.task or "?", "refused").inc()
            await abort(context, getattr(grpc.StatusCode, exc.code), str(exc))
        except DBAPIError as exc:
            await _database_unavailable(context, exc)
        if not duplicate:
            LABELS.labels(SERVICE, label.task, KIND.get(label.labeller_kind, "unspecified")).inc()
            LEASES.labels(SERVICE, label.task, "fulfilled").inc()
            self._changed()
        return L.SubmitLabelResponse(label=label, duplicate=duplicate)

    async def ListQueue(self, request, context):
        items, token = await self._run(context, self.store.queue.waiting, request.task, request.review, request.page_size, request.page_token)
        return L.ListQueueResponse(items=items, next_page_token=token)

    async def ReleaseLease(self, request, context):
        released = await self._run(context, self.store.queue.release_lease, request.lease_id, request.reason)
        if released:
            LEASES.labels(SERVICE, "-", "released").inc()
        return L.ReleaseLeaseResponse(released=released)

    # -- datasets -------------------------------------------------------------------------------
    async def CreateDataset(self, request, context):
        operator = await self._operator(context)
        dataset, existed = await self._run(context, self.store.datasets.create, request.name, list(request.tasks), request.filter, request.split, request.description)
        self._changed()
        log.info("dataset", name=dataset.name, version=dataset.version, existed=existed, operator=operator, sha256=dataset.manifest_sha256)
        return L.CreateDatasetResponse(dataset=dataset, already_existed=existed)

    async def GetDataset(self, request, context):
        return L.GetDatasetResponse(dataset=await self._run(context, self.store.datasets.get, request.name, request.version))

    async def ListDatasets(self, request, context):
        page, token = await self._run(context, self.store.datasets.list, request.name, request.page_size, request.page_token)
        return L.ListDatasetsResponse(datasets=page, next_page_token=token)

    async def RebuildDataset(self, request, context):
        await self._operator(context)
        dataset, digest, matches, reuploaded = await self._run(context, self.store.datasets.rebuild, request.name, request.version)
        return L.RebuildDatasetResponse(dataset=dataset, rebuilt_sha256=digest, matches=matches, reuploaded=reuploaded)

    # -- suites ---------------------------------------------------------------------------------
    async def UpsertSuite(self, request, context):
        operator = await self._operator(context)
        suite, changed = await self._run(context, self.store.suites.upsert, request.yaml)
        log.info("suite upserted", suite=suite.name, version=suite.version, changed=changed, operator=operator)
        return L.UpsertSuiteResponse(suite=suite, changed=changed)

    async def GetSuite(self, request, context):
        return L.GetSuiteResponse(suite=await self._run(context, self.store.suites.get, request.name, request.version))

    async def ListSuites(self, request, context):
        return L.ListSuitesResponse(suites=await self._run(context, self.store.suites.list, request.task))

    async def PromoteToSuiteCase(self, request, context):
        await self._operator(context)
        case, suite, existed = await self._run(context, self.store.suites.promote, request.suite, request.sample_id, request.predicate, request.note)
        return L.PromoteToSuiteCaseResponse(case=case, suite=suite, already_existed=existed)

    async def EvaluateSuites(self, request, context):
        if request.record and not access.caller().has(access.OPERATOR, access.SERVICE):  # recorded results gate models and feed dashboards
            await abort(context, grpc.StatusCode.PERMISSION_DENIED if access.caller().subject else grpc.StatusCode.UNAUTHENTICATED, "recording suite results needs an operator's or a service's token")
        started = time.perf_counter()
        results = await self._run(context, self.store.suites.evaluate, request.model, list(request.suites), list(request.predictions), request.record)
        if request.record:
            self._changed()
            for r in results:
                SUITE_PASS.labels(SERVICE, r.suite, r.model.name, str(r.model.version)).set(r.pass_rate)
        log.info("suites evaluated", model=f"{request.model.name}:{request.model.version}", suites=len(results), record=request.record, seconds=round(time.perf_counter() - started, 3))
        return L.EvaluateSuitesResponse(results=results)

    async def GetSuiteReport(self, request, context):
        return L.GetSuiteReportResponse(results=await self._run(context, self.store.suites.report, request.suite, request.model_name, request.last_versions))


async def update_gauges(store: LabelStore, interval: float = 5.0) -> None:
    """Queue depth and live leases per task, for dashboards and alerts."""
    while True:
        try:
            stats = await asyncio.to_thread(store.queue.stats)
            tasks = {t.name for t in await asyncio.to_thread(store.tasks.list)}
            for task in tasks:
                for queue in ("label", "review"):
                    QUEUE_DEPTH.labels(SERVICE, task, queue).set(stats.get((task, queue), (0, 0))[0])
                LEASED.labels(SERVICE, task).set(sum(stats.get((task, q), (0, 0))[1] for q in ("label", "review")))
        except Exception as exc:  # a database hiccup must not kill the gauges
            log.warning("gauge update failed", error=repr(exc))
        await asyncio.sleep(interval)
