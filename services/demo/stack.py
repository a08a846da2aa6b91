"""The demo's stack: the local infrastructure and every service as its own process, and the
operator's clients to them. Nothing here knows about arms or long-tail cases."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from longtail.registry import SERVICES

from longtail_dev.dev_tls import dev_tls

if TYPE_CHECKING:
    from longtail_dev.infra import Launcher

# The run's consumer groups and the topics they read (they start at the end: see `Stack.start`).
GROUP_TOPICS = {"label-store": ("SNAPSHOTS", "INFERENCE_RESULTS"), "inference": ("SNAPSHOTS",), "map-vision": ("TELEMETRY",), "trainer": ("LABELS_CREATED",)}


class Stack:
    """Infrastructure (`longtail_dev.infra.Launcher`) and the services (`longtail_dev.supervisor.ServiceProcess`)."""

    def __init__(self, run_id: str, say: Callable[[str], None], manage_infra: bool = True, triton: bool = True, prometheus: bool = True) -> None:
        self.run_id = run_id
        self.say = say
        self.manage_infra = manage_infra
        self.triton = triton
        self.prometheus = prometheus
        self.operator_secret = secrets.token_hex(24)
        self.fleet_secret = secrets.token_hex(24)
        self.processes: dict = {}
        self.launcher: Launcher | None = None
        self.notes: list[str] = []
        self.env: dict[str, dict[str, str]] = {}
        self.state = Path(os.environ.get("LONGTAIL_STATE_DIR", Path.home() / ".local/state/longtail")) / "demo" / run_id
        self.pki = self.state / "pki"  # the run's CA, the services' and the operator's certificates, the cars' (cars/)
        self.credentials = None  # the operator's TLS credentials (configure)
        self.extra: list = []  # processes beside the services (the Label Studio bridge)

    @property
    def auth(self):
        """gRPC metadata of the run's operator."""
        return self.token_metadata("demo-operator", "operator")

    def token_metadata(self, name: str, role: str) -> list[tuple[str, str]]:
        """gRPC metadata of `name` in `role` (longtail.access): e.g. a simulated labeller's."""
        from longtail.auth import OPERATOR_AUDIENCE, issue_token

        return [("authorization", f"Bearer {issue_token(name, self.operator_secret, audience=OPERATOR_AUDIENCE, roles=(role,))}")]

    def cli_env(self) -> dict[str, str]:
        """What `longtail` commands need to reach this run's services: addresses, the operator
        secret (to mint tokens) and the TLS files."""
        from longtail_cli.client import ADDRESS_VARIABLES

        env = {variable: self.processes[name].address for name, variable in ADDRESS_VARIABLES.items() if name in self.processes}
        env["OPERATOR_TOKEN_SECRET"] = self.operator_secret
        env.update(dev_tls(self.pki).operator_env())
        return env

    def infra_up(self) -> None:
        from longtail_dev.infra import Launcher

        if not self.manage_infra:
            return
        self.launcher = Launcher(say=lambda m: self.say(f"[cyan]infra[/] {m}"))
        names = ["kafka", "s3", "postgres"] + (["triton"] if self.triton else [])
        if self.prometheus:
            if shutil.which("prometheus"):
                names.append("prometheus")
            else:
                self.notes.append("no local Prometheus: `prometheus` is not installed (apt-get install prometheus; scripts/bootstrap does it as root)")
        os.environ.update(self.launcher.up(names))

    def configure(self, fleet_model: str, seed_map: Path, label_store_db: str = "") -> None:
        """Each service's environment. `fleet_model` is the model line the gateway beams to the cars
        and inference pre-labels with; `label_store_db` a database URL for the label store (default:
        a new SQLite file of this run)."""
        from longtail import topics
        from longtail.kafka import start_group_at_end

        self.state.mkdir(parents=True, exist_ok=True)
        common = {"OPERATOR_TOKEN_SECRET": self.operator_secret}
        groups = {name: f"{name}-{self.run_id}" for name in GROUP_TOPICS}
        self.env = {
            "label-store": {**common, "DATABASE_URL": label_store_db or f"sqlite:///{self.state / 'labels.db'}", "LABEL_STORE_CONSUMER_GROUP": groups["label-store"], "LABEL_STORE_DATA_DIR": str(self.state)},
            "gateway": {"FLEET_TOKEN_SECRET": self.fleet_secret, "GATEWAY_FLEET_MODEL": fleet_model},
            "trigger-evaluator": dict(common),
            "inference": {**common, "INFERENCE_MODEL_NAME": fleet_model, "INFERENCE_CONSUMER_GROUP": groups["inference"]},
            # The demo starts every run itself; the label consumer runs as in production (its lag
            # and progress are on the dashboards) with a threshold no demo reaches.
            "trainer": {**common, "TRAINER_MODEL_NAME": fleet_model, "TRAINER_LABEL_THRESHOLD": "1000000", "TRAINER_THREADS": "2", "TRAINER_CONSUMER_GROUP": groups["trainer"]},
            # Seeded with the simulator's deliberately imperfect map (missing and stale features).
            "map-vision": {**common, "MAP_VISION_SEED_FILE": str(seed_map), "MAP_VISION_CONSUMER_GROUP": groups["map-vision"]},
        }
        self._tls()
        # This run's consumers keep their state in new databases (or in memory): they start at the
        # end of their topics, not at what earlier runs on a kept broker produced.
        for name, consumed in GROUP_TOPICS.items():
            start_group_at_end(os.environ["KAFKA_BOOTSTRAP_SERVERS"], groups[name], [getattr(topics, t) for t in consumed])

    def _tls(self) -> None:
        """Every service on TLS with one certificate for 127.0.0.1 and localhost (a CA of the run's,
        longtail_dev.dev_tls); the gateway requires a car's certificate (each simulated car gets its
        own, fleet_sim.fleet.car_credentials), the others verify a client certificate when one is
        presented (services and the operator present theirs)."""
        tls = dev_tls(self.pki)
        for name, env in self.env.items():
            env.update(tls.service_env("require" if name == "gateway" else "optional"))
        self.credentials = tls.credentials("operator")
        self.say(f"[cyan]tls[/] every service on TLS, cars with their own certificates (CA {tls.ca})")

    def start(self, name: str, **env: str) -> None:
        """Start (or restart with `env` on top of its configuration) one service, from the main
        thread: children die with the thread that started them (PR_SET_PDEATHSIG)."""
        from longtail_dev.supervisor import ServiceProcess

        if name in self.processes:
            self.processes.pop(name).stop(timeout=30)
        if name == "trainer":
            self.env[name]["LABEL_STORE_ADDR"] = self.processes["label-store"].address
        self.env[name].update(env)
        service = SERVICES[name]
        proc = ServiceProcess(service.package, service.grpc, self.env[name], log_path=self.state / "logs" / f"{name}.log")
        self.processes[name] = proc  # registered before start: stop() reaches it on failure
        proc.start(timeout=240)
        self.say(f"[green]service[/] {name} serving on {proc.address} (pid {proc.pid})")

    def clients(self) -> None:
        from longtail.config import S3Settings, load
        from longtail.grpc_client import channel
        from longtail.labels.v1 import labels_pb2_grpc
        from longtail.models.v1 import trainer_pb2_grpc
        from longtail.storage import ObjectStore
        from longtail.triggers.v1 import triggers_pb2_grpc

        # The operator's calls outlast a service's restart (longtail.grpc_client: UNAVAILABLE retried).
        self.labels = labels_pb2_grpc.LabelStoreServiceStub(channel(self.processes["label-store"].address, credentials=self.credentials))
        self.trainer = trainer_pb2_grpc.TrainerServiceStub(channel(self.processes["trainer"].address, credentials=self.credentials))
        self.catalog = triggers_pb2_grpc.TriggerCatalogServiceStub(channel(self.processes["trigger-evaluator"].address, credentials=self.credentials))
        self.objects = ObjectStore(load(S3Settings), service="demo")
        self.objects.ensure_bucket()

    def start_label_studio(self) -> dict[str, str]:
        """Label Studio (`longtail infra up --label-studio`) and the bridge to this run's label store,
        with a labeller's account: a person labels the run's uploads in a browser and the labels go
        to the label store like any other (docs/label-studio.md). Returns the URL and the login."""
        import secrets

        from longtail.auth import OPERATOR_AUDIENCE, issue_token

        from longtail_dev.infra import Launcher
        from longtail_dev.infra.label_studio import LabelStudio
        from longtail_dev.supervisor import HttpServiceProcess

        studio = (self.launcher or Launcher(say=lambda m: self.say(f"[cyan]infra[/] {m}"))).up(["label-studio"])
        login = {"email": "labeller@longtail.local", "password": secrets.token_urlsafe(9)}
        LabelStudio().create_user(login["email"], login["password"])
        store = self.env["label-store"]
        env = {
            **studio,
            "LABEL_STORE_ADDR": self.processes["label-store"].address,
            "STUDIO_BRIDGE_LABEL_STORE_TOKEN": issue_token("label-studio", self.operator_secret, ttl_seconds=7 * 24 * 3600, audience=OPERATOR_AUDIENCE, roles=("bridge",)),
            "STUDIO_BRIDGE_WEBHOOK_SECRET": secrets.token_hex(16),
            "STUDIO_BRIDGE_PROJECT_PREFIX": f"demo {self.run_id}"[:30],
            **{k: v for k, v in store.items() if k.startswith("GRPC_TLS_")},
        }
        bridge = HttpServiceProcess("studio_bridge", "STUDIO_BRIDGE_HTTP_PORT", env, log_path=self.state / "logs" / "studio-bridge.log").start(timeout=120)
        self.extra.append(bridge)
        self.say(f"[green]service[/] studio-bridge on {bridge.url} (pid {bridge.proc.pid if bridge.proc else '?'})")
        return {"url": studio["LABEL_STUDIO_URL"], "projects": f"'{env['STUDIO_BRIDGE_PROJECT_PREFIX']} <task>'", **login}

    def stop(self, keep_infra: bool = False) -> None:
        for extra in self.extra:
            extra.stop(timeout=30)
        for name, proc in reversed(list(self.processes.items())):
            try:
                proc.stop(timeout=30)
                self.say(f"[yellow]service[/] {name} stopped")
            except Exception as exc:  # noqa: BLE001 - keep stopping the others
                self.say(f"[red]service[/] {name}: {exc}")
        if self.launcher is not None and not keep_infra:
            self.launcher.down()
