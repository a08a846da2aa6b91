"""`python -m trigger_evaluator` / `longtail serve trigger-evaluator`.

Environment: KAFKA_BOOTSTRAP_SERVERS, OPERATOR_TOKEN_SECRET, S3_* (backtests over archived
segments; optional), GRPC_PORT, METRICS_PORT, TRIGGER_EVALUATOR_* (trigger_evaluator/settings.py:
FLEET_WORKER false = catalog API only; STALL_TIMEOUT_S, a fleet stage that has not polled for this
long turns health NOT_SERVING, 120).
"""

from __future__ import annotations

import asyncio

from longtail import config, log, topics
from longtail.auth import OperatorAuthSettings
from longtail.gc_tuning import tune_gc
from longtail.grpc_server import run_service
from longtail.kafka import Producer, TopicFollower
from longtail.registry import TRIGGER_EVALUATOR
from longtail.runtime import ServiceRuntime
from longtail.storage import ObjectStore
from longtail.topics import ensure_topics
from longtail.triggers.v1 import triggers_pb2_grpc

from trigger_evaluator.catalog import Catalog, CatalogError
from trigger_evaluator.fleet_worker import FleetWorker, MapView
from trigger_evaluator.ledger import SERVICE, YieldLedger
from trigger_evaluator.service import TriggerCatalog
from trigger_evaluator.settings import TriggerEvaluatorSettings

log_ = log.get_logger(__name__)


def enforce_rules(api: TriggerCatalog, changed: tuple[str, int] | None) -> None:
    """Budget used up -> EXHAUSTED, yield below floor -> PAUSED, with the reason (runs on the loop)."""
    if changed is None:
        return
    trigger = api.catalog.latest.get(changed[0])
    if trigger is None or trigger.version != changed[1]:
        return
    breach = api.ledger.rule_breach(trigger)
    if breach is None:
        return
    state, reason = breach

    async def apply() -> None:
        try:
            updated = api.catalog.transition(trigger.trigger_id, state, reason, SERVICE)
        except CatalogError:
            return
        if updated is not trigger:
            await api.publish(updated)
            log_.info("trigger state changed by rule", trigger=trigger.trigger_id, reason=reason)

    asyncio.get_running_loop().create_task(apply())


async def serve() -> None:
    service_settings = config.load(config.ServiceSettings)
    kafka = config.load(config.KafkaSettings)
    settings = config.load(TriggerEvaluatorSettings)
    operator_secret = config.load(OperatorAuthSettings).token_secret
    s3 = config.load_optional(config.S3Settings, "S3_ENDPOINT")  # backtests over archived segments need S3; time ranges do not
    store = ObjectStore(s3, service=SERVICE) if s3 is not None else None
    await asyncio.to_thread(ensure_topics, kafka.bootstrap_servers, topics.ALL, kafka.replication_factor, kafka.min_insync_replicas)
    runtime = ServiceRuntime(SERVICE, service_settings, token_secret=operator_secret)

    producer = Producer(kafka.bootstrap_servers, SERVICE)
    runtime.on_shutdown(producer.close)
    catalog, ledger = Catalog(), YieldLedger()
    map_view = MapView()
    api = TriggerCatalog(catalog, ledger, producer, kafka.bootstrap_servers, store, map_view)

    def on_catalog(key, record) -> None:
        catalog.apply(key, None if record is None else record.trigger)
        if record is not None:
            enforce_rules(api, (record.trigger.trigger_id, record.trigger.version))

    follower = TopicFollower(
        kafka.bootstrap_servers,
        {
            topics.TRIGGER_CATALOG: on_catalog,
            topics.MAP_FEATURES: map_view.apply,
            topics.TRIGGERS_FIRED: lambda k, v: enforce_rules(api, ledger.on_fired(k, v)),
            topics.SNAPSHOTS: lambda k, v: enforce_rules(api, ledger.on_snapshot(k, v)),
            topics.LABELS_CREATED: lambda k, v: enforce_rules(api, ledger.on_label(k, v)),
        },
        asyncio.get_running_loop(),
        name=SERVICE,
    )
    follower.start()
    runtime.on_shutdown(follower.stop)
    await follower.caught_up.wait()  # answer only with the whole catalog in view
    tune_gc()

    if settings.fleet_worker:
        fleet = await asyncio.to_thread(FleetWorker, kafka.bootstrap_servers, lambda: catalog.latest, kafka.replication_factor, map_view=map_view, min_insync_replicas=kafka.min_insync_replicas)
        # A failed stage (e.g. a broker error it cannot retry) stops the process: the supervisor or
        # Kubernetes restarts it, and it resumes from its last commit.
        runtime.add_worker("fleet worker", fleet, settings.stall_timeout_s)
    runtime.server.add(triggers_pb2_grpc.add_TriggerCatalogServiceServicer_to_server, api, TRIGGER_EVALUATOR.grpc)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, serve)


if __name__ == "__main__":
    main()
