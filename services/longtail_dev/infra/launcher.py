"""`longtail infra up | status | down`: real local infrastructure on loopback.

Installs what is missing (cached under ~/.cache/longtail, nothing in the repository) and starts:
  kafka     Apache Kafka in KRaft mode, jars resolved from Maven Central
  s3        versitygw (an S3 gateway over plain files), built with `go install`
  postgres  a private PostgreSQL cluster (Debian's server, initdb in a data directory)
  triton    NVIDIA Triton through PyTriton, on CPU (opt-in: it takes a few seconds and ~1 GB)
  prometheus  Debian's Prometheus scraping every service started locally (opt-in), with the
            alert rules the umbrella chart ships
  label-studio  Label Studio, the labelling front end, in its own virtualenv (opt-in, label_studio.py)

Each component is started in its own process group and recorded (pid + process start time) in
the state directory; `down` stops exactly those processes. A second `up` reuses what is running.
The pytest fixtures and `longtail demo` use this same launcher.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

KAFKA_VERSION = "4.1.1"
VERSITYGW_VERSION = "v1.7.0"
S3_ACCESS_KEY = "longtail"
S3_SECRET_KEY = "longtail-local-secret"
S3_BUCKET = "longtail"


class InfraError(RuntimeError):
    """Infrastructure could not be installed or started; the message says what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("LONGTAIL_CACHE_DIR", Path.home() / ".cache" / "longtail"))


def state_dir() -> Path:
    return Path(os.environ.get("LONGTAIL_STATE_DIR", cache_dir() / "state"))


def _port(var: str, default: int) -> int:
    raw = os.environ.get(var)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise InfraError(f"{var}={raw!r} is not a TCP port")
    return int(raw)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _proc_start_time(pid: int) -> str | None:
    """Start time of a pid (clock ticks since boot): tells our process from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _need(tool: str, why: str, how: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise InfraError(f"`{tool}` was not found on PATH; it is needed {why}. Install it: {how}")
    return found


def _run(cmd: list[str], log: Path, what: str, **kwargs) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode != 0:
        raise InfraError(f"{what} failed (exit {result.returncode}); last lines of {log}:\n{_tail(log)}")


class Component:
    """One piece of infrastructure: how to install it, start it and tell that it is ready."""

    ready_timeout = 90.0

    def __init__(self, name: str, ports: dict[str, int]) -> None:
        self.name = name
        self.ports = ports
        self.home = state_dir() / name

    @property
    def log_path(self) -> Path:
        return self.home / f"{self.name}.log"

    def install(self, say: Callable[[str], None]) -> None:  # idempotent, cached
        pass

    def command(self) -> tuple[list[str], dict[str, str], dict]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def started(self) -> bool:
        """What `up` waits for before it starts the next component: ready, unless the component
        becomes ready only with others (a Kafka cluster's first nodes)."""
        return self.ready()

    def after_ready(self) -> None:
        pass

    def env(self) -> dict[str, str]:
        return {}

    def describe(self) -> str:
        return ", ".join(f"{k} 127.0.0.1:{v}" for k, v in self.ports.items())


KAFKA_CLUSTER_NODES = 3


class Kafka(Component):
    """One Kafka process in KRaft combined mode (broker and controller).

    `Kafka()` is the single broker of the demo and the tests ("kafka"). `Kafka(node=i)`, i in 1..3,
    is a node of the replicated cluster (`longtail infra up --kafka-brokers 3`: "kafka-1".."kafka-3"),
    each with its own ports (LONGTAIL_KAFKA_CLUSTER_PORT, default 19192, + 10 per node) and data;
    the three form the controller quorum, and topics get replication factor 3 and
    min.insync.replicas 2, as on a production cluster. Drills kill the nodes one by one.
    """

    ready_timeout = 120.0

    def __init__(self, node: int = 0) -> None:
        if node:
            if not 1 <= node <= KAFKA_CLUSTER_NODES:
                raise InfraError(f"the Kafka cluster has nodes 1..{KAFKA_CLUSTER_NODES}, not {node}")
            base = _port("LONGTAIL_KAFKA_CLUSTER_PORT", 19192) + 10 * (node - 1)
            super().__init__(f"kafka-{node}", {"broker": base, "controller": base + 1})
        else:
            super().__init__("kafka", {"broker": _port("LONGTAIL_KAFKA_PORT", 19092), "controller": _port("LONGTAIL_KAFKA_CONTROLLER_PORT", 19093)})
        self.node = node
        self.node_id = node or 1
        self.replicas = KAFKA_CLUSTER_NODES if node else 1
        self.dist = cache_dir() / f"kafka-{KAFKA_VERSION}"

    def members(self) -> list[Kafka]:
        return [Kafka(i) for i in range(1, KAFKA_CLUSTER_NODES + 1)] if self.node else [self]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{k.ports['broker']}" for k in self.members())

    @property
    def own_broker(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    @property
    def cluster_id_file(self) -> Path:
        # one id for the whole cluster: every node formats its storage with it
        return self.home / "cluster-id" if not self.node else state_dir() / "kafka-cluster-id"

    def install(self, say: Callable[[str], None]) -> None:
        self.java = _need("java", "to run the Kafka broker", "apt-get install openjdk-17-jre-headless (Java 17+)")
        if (self.dist / ".complete").exists():
            return
        mvn = _need("mvn", "to fetch the Kafka broker jars from Maven Central", "apt-get install maven")
        say(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central (once) ...")
        self.dist.mkdir(parents=True, exist_ok=True)
        pom = resources.files("longtail_dev.infra").joinpath("kafka-pom.xml").read_text().replace("@KAFKA_VERSION@", KAFKA_VERSION)
        (self.dist / "pom.xml").write_text(pom)
        _run(
            [mvn, "-q", "-B", "-f", str(self.dist / "pom.xml"), "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={self.dist / 'lib'}"],
            self.dist / "install.log",
            "fetching the Kafka jars with Maven",
        )
        (self.dist / ".complete").touch()

    def _write_config(self) -> Path:
        from longtail.topics import min_insync

        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        broker, controller = self.ports["broker"], self.ports["controller"]
        rf, isr = str(self.replicas), str(min_insync(self.replicas))
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(f"{k.node_id}@127.0.0.1:{k.ports['controller']}" for k in self.members()),
            "listeners": f"PLAINTEXT://127.0.0.1:{broker},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{broker}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",  # topics come from the registry, explicitly
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "unclean.leader.election.enable": "false",  # never elect a replica that may lack acknowledged writes
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": isr,
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "2097152",  # the default allocates 128 MB
            "message.max.bytes": str(16 * 1024 * 1024),
            "replica.fetch.max.bytes": str(16 * 1024 * 1024),
            "log.retention.check.interval.ms": "60000",
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def command(self):
        config = self._write_config()
        classpath = str(self.dist / "lib" / "*")
        log4j = self.home / "log4j2.xml"
        log4j.write_text(resources.files("longtail_dev.infra").joinpath("kafka-log4j2.xml").read_text())
        heap = "-Xmx512m" if self.node else "-Xmx768m"  # three of them on one machine
        java_opts = [heap, "-Xms256m", "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={log4j}", "-Djava.awt.headless=true"]
        if not (self.home / "data" / "meta.properties").exists():
            cluster_file = self.cluster_id_file
            if not cluster_file.exists():
                cluster_file.parent.mkdir(parents=True, exist_ok=True)
                cluster_file.write_text(kafka_cluster_id())
            _run(
                [self.java, *java_opts, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_file.read_text().strip(), "-c", str(config), "--ignore-formatted"],
                self.log_path,
                "formatting Kafka storage",
            )
        return [self.java, *java_opts, "-cp", classpath, "kafka.Kafka", str(config)], {}, {}

    def brokers(self, timeout: float = 2) -> set[int]:
        """The broker ids this node's metadata lists (empty when it does not answer)."""
        from confluent_kafka.admin import AdminClient

        try:
            admin = AdminClient({"bootstrap.servers": self.own_broker, "socket.connection.setup.timeout.ms": 2000, "log_level": 0})
            return set(admin.list_topics(timeout=timeout).brokers)
        except Exception:
            return set()

    @property
    def last(self) -> bool:
        return self.node in (0, KAFKA_CLUSTER_NODES)

    def ready(self) -> bool:
        return self.node_id in self.brokers()

    def started(self) -> bool:
        """A cluster node answers only once a quorum of controllers is up: the first ones count as
        started when their controller port listens; the last one when every broker registered."""
        if self.last:
            return self.brokers() >= {k.node_id for k in self.members()}
        return port_in_use(self.ports["controller"])

    def after_ready(self) -> None:
        if self.last:
            from longtail.topics import ensure_topics

            ensure_topics(self.bootstrap, replication_factor=self.replicas)

    def env(self) -> dict[str, str]:
        from longtail.topics import min_insync

        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap}
        if self.node:
            env |= {"KAFKA_REPLICATION_FACTOR": str(self.replicas), "KAFKA_MIN_INSYNC_REPLICAS": str(min_insync(self.replicas))}
        return env


def kafka_cluster_id() -> str:
    """A random cluster id in Kafka's form (url-safe base64 of a UUID). Like Kafka's own
    Uuid.randomUuid, never one starting with '-': the storage tool would read it as an option."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


class S3(Component):
    def __init__(self) -> None:
        super().__init__("s3", {"s3": _port("LONGTAIL_S3_PORT", 19000)})
        self.binary = cache_dir() / "bin" / "versitygw"

    def install(self, say: Callable[[str], None]) -> None:
        if self.binary.exists():
            return
        go = _need("go", "to build versitygw, the local S3 server", "install Go 1.22+ (https://go.dev/doc/install) or apt-get install golang")
        say(f"building versitygw {VERSITYGW_VERSION} with `go install` (once) ...")
        env = {**os.environ, "CGO_ENABLED": "0", "GOBIN": str(self.binary.parent)}
        _run([go, "install", f"github.com/versity/versitygw/cmd/versitygw@{VERSITYGW_VERSION}"], cache_dir() / "versitygw-install.log", "building versitygw", env=env)

    def command(self):
        data, meta = self.home / "data", self.home / "meta"
        data.mkdir(parents=True, exist_ok=True)
        meta.mkdir(parents=True, exist_ok=True)
        cmd = [str(self.binary), "--port", f"127.0.0.1:{self.ports['s3']}", "--access", S3_ACCESS_KEY, "--secret", S3_SECRET_KEY, "--quiet", "posix", "--sidecar", str(meta), str(data)]
        return cmd, {}, {}

    def _store(self):
        from longtail.config import S3Settings
        from longtail.storage import ObjectStore

        values: dict[str, Any] = {k.removeprefix("S3_").lower(): v for k, v in self.env().items()}  # strings, parsed by the settings
        return ObjectStore(S3Settings(**values))

    def ready(self) -> bool:
        try:
            self._store().client.list_buckets()
            return True
        except Exception:
            return False

    def after_ready(self) -> None:
        self._store().ensure_bucket()

    def env(self) -> dict[str, str]:
        return {"S3_ENDPOINT": f"127.0.0.1:{self.ports['s3']}", "S3_ACCESS_KEY": S3_ACCESS_KEY, "S3_SECRET_KEY": S3_SECRET_KEY, "S3_BUCKET": S3_BUCKET}


class Postgres(Component):
    USER = "longtail"
    DATABASE = "longtail"

    def __init__(self) -> None:
        super().__init__("postgres", {"postgres": _port("LONGTAIL_POSTGRES_PORT", 15432)})
        self.as_root = os.geteuid() == 0
        if self.as_root:
            # PostgreSQL refuses to run as root: run it as the `postgres` account, in a directory
            # that account can reach (root's home is private).
            self.home = Path(os.environ.get("LONGTAIL_POSTGRES_DIR", "/var/tmp/longtail-postgres"))

    def _bin(self, name: str) -> str:
        found = shutil.which(name)
        if not found:
            candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
            found = str(candidates[-1]) if candidates else None
        if not found:
            raise InfraError(f"PostgreSQL's `{name}` was not found; install the server: apt-get install postgresql")
        return found

    def _as_postgres(self, cmd: list[str]) -> list[str]:
        """`cmd` run as the `postgres` account when we are root. Through setpriv, not subprocess's
        user=/group= (those make Python fork the whole, multi-threaded caller and switch user in
        the child before exec; with grpc loaded that child crashed now and then: exit -11)."""
        if not self.as_root:
            return cmd
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise InfraError("running as root, PostgreSQL needs the `postgres` account: apt-get install postgresql creates it") from None
        setpriv = shutil.which("setpriv")
        if not setpriv:
            raise InfraError("running as root needs `setpriv` (util-linux) to start PostgreSQL as the `postgres` account")
        return [setpriv, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--", *cmd]

    def install(self, say: Callable[[str], None]) -> None:
        self.postgres = self._bin("postgres")
        initdb = self._bin("initdb")
        data = self.home / "data"
        if (data / "PG_VERSION").exists():
            return
        say("initialising a private PostgreSQL cluster ...")
        self.home.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.home, pw.pw_uid, pw.pw_gid)
        _run(self._as_postgres([initdb, "-D", str(data), "-U", self.USER, "--auth=trust", "-E", "UTF8", "--no-instructions"]), self.home / "initdb.log", "initdb", cwd="/")

    def command(self):
        socket_dir = self.home / "run"
        socket_dir.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(socket_dir, pw.pw_uid, pw.pw_gid)
        cmd = [self.postgres, "-D", str(self.home / "data"), "-p", str(self.ports["postgres"]), "-k", str(socket_dir), "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "fsync=on"]
        return self._as_postgres(cmd), {}, {"cwd": "/"}

    def _connect(self, dbname: str):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.ports["postgres"], user=self.USER, dbname=dbname, connect_timeout=2, autocommit=True)

    def ready(self) -> bool:
        try:
            with self._connect("postgres") as conn:
                conn.execute("select 1")
            return True
        except Exception:
            return False

    def after_ready(self) -> None:
        with self._connect("postgres") as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (self.DATABASE,)).fetchone():
                conn.execute(f'create database "{self.DATABASE}"')

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": f"postgresql+psycopg://{self.USER}@127.0.0.1:{self.ports['postgres']}/{self.DATABASE}"}


class Triton(Component):
    ready_timeout = 180.0

    def __init__(self) -> None:
        super().__init__(
            "triton",
            {"grpc": _port("LONGTAIL_TRITON_GRPC_PORT", 18001), "http": _port("LONGTAIL_TRITON_HTTP_PORT", 18000), "metrics": _port("LONGTAIL_TRITON_METRICS_PORT", 18002)},
        )

    def install(self, say: Callable[[str], None]) -> None:
        try:
            import pytriton  # noqa: F401
        except ImportError:
            raise InfraError("nvidia-pytriton is not installed in this environment: run scripts/bootstrap") from None

    def command(self):
        cmd = [sys.executable, "-m", "longtail_dev.infra.triton_server", "--grpc-port", str(self.ports["grpc"]), "--http-port", str(self.ports["http"]), "--metrics-port", str(self.ports["metrics"])]
        if self._prepare_repository():
            cmd += ["--model-repository", self.model_repository]
        # PyTriton's Python-backend stub links the system libpython; this interpreter's own library
        # must come first or the stub fails against our standard library (INFRA-NOTES).
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env = {"LD_LIBRARY_PATH": ":".join(p for p in [libdir, os.environ.get("LD_LIBRARY_PATH", "")] if p)}
        # Triton reads the model repository straight from the local S3 server (its own S3 client),
        # as the production Triton reads the real bucket; it is contacted only on load_model.
        env.update({"AWS_ACCESS_KEY_ID": S3_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY, "AWS_DEFAULT_REGION": "us-east-1"})
        return cmd, env, {}

    def _prepare_repository(self) -> bool:
        """Triton refuses a repository path that does not exist, and an S3 "directory" exists only
        once an object lives under it: write a marker. Without a reachable S3 server Triton starts
        without the repository (tiny_linear only) and says so in its log."""
        s3 = S3()
        if not s3.ready():
            with self.log_path.open("a") as log:
                log.write(f"model repository disabled: no S3 server on 127.0.0.1:{s3.ports['s3']} (start s3 before triton)\n")
            return False
        store = s3._store()
        store.ensure_bucket()
        if not store.exists("models/.repository"):
            store.put_at("models/.repository", b"longtail Triton model repository (models/<name>/config.pbtxt, models/<name>/<version>/...)\n", "text/plain")
        return True

    @property
    def model_repository(self) -> str:
        """Triton's URL of the model repository: the `models/` prefix of the local S3 bucket."""
        return f"s3://http://127.0.0.1:{_port('LONGTAIL_S3_PORT', 19000)}/{S3_BUCKET}/models"

    def ready(self) -> bool:
        import tritonclient.grpc as triton_grpc

        try:
            client = triton_grpc.InferenceServerClient(f"127.0.0.1:{self.ports['grpc']}")
            try:
                # The server answers before PyTriton has bound its model: ready means the model is.
                from longtail_dev.infra.triton_server import TINY_MODEL

                return bool(client.is_server_ready(client_timeout=2)) and bool(client.is_model_ready(TINY_MODEL, client_timeout=2))
            finally:
                client.close()
        except Exception:
            return False

    def after_ready(self) -> None:
        register_scrape_target("triton", f"127.0.0.1:{self.ports['metrics']}", str(self.ports["metrics"]))

    def env(self) -> dict[str, str]:
        return {"TRITON_GRPC_ADDR": f"127.0.0.1:{self.ports['grpc']}", "TRITON_METRICS_URL": f"http://127.0.0.1:{self.ports['metrics']}/metrics", "TRITON_MODEL_REPOSITORY": self.model_repository}


# -- Prometheus -----------------------------------------------------------------------------------
# Services started locally (longtail_dev.supervisor.ServiceProcess, Triton) announce their metrics
# endpoint as a file_sd target file; Prometheus re-reads the directory, so targets come and go with
# the processes. The labels mirror what the Prometheus Operator adds in a cluster (namespace, pod),
# so the charts' dashboards and alert rules work unchanged on the local scrape.
LOCAL_NAMESPACE = "local"
RULES_DIR = Path(__file__).resolve().parents[3] / "charts" / "longtail" / "rules"


def scrape_targets_dir() -> Path:
    return state_dir() / "prometheus" / "targets"


def register_scrape_target(job: str, address: str, instance_id: str) -> Path:
    """Announce a metrics endpoint (host:port) to the local Prometheus; returns the target file."""
    directory = scrape_targets_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{job}-{instance_id}.json"
    tmp = path.with_suffix(".tmp")  # Prometheus only reads *.json: never a half-written file
    tmp.write_text(json.dumps([{"targets": [address], "labels": {"job": job, "namespace": LOCAL_NAMESPACE, "pod": f"{job}-{instance_id}"}}]))
    tmp.replace(path)
    return path


class Prometheus(Component):
    def __init__(self) -> None:
        super().__init__("prometheus", {"prometheus": _port("LONGTAIL_PROMETHEUS_PORT", 19090)})

    def install(self, say: Callable[[str], None]) -> None:
        self.binary = _need("prometheus", "for the local metrics scrape", "apt-get install prometheus (scripts/bootstrap does it when run as root)")

    def _write_config(self) -> Path:
        import yaml

        scrape_targets_dir().mkdir(parents=True, exist_ok=True)
        config = {
            # Short intervals: the demo and the tests run for minutes, not days.
            "global": {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "5s"},
            "rule_files": [str(RULES_DIR / "*.yaml")],
            "scrape_configs": [
                {
                    "job_name": "longtail",
                    # Our metrics carry a `service` label; keep it (the charts' ServiceMonitors do the same).
                    "honor_labels": True,
                    "file_sd_configs": [{"files": [str(scrape_targets_dir() / "*.json")], "refresh_interval": "2s"}],
                }
            ],
        }
        path = self.home / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def command(self):
        cmd = [self.binary, f"--config.file={self._write_config()}", f"--storage.tsdb.path={self.home / 'data'}", f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}", "--storage.tsdb.retention.time=2d", "--web.enable-lifecycle"]
        return cmd, {}, {"cwd": str(self.home)}

    def ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['prometheus']}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def env(self) -> dict[str, str]:
        return {"PROMETHEUS_URL": f"http://127.0.0.1:{self.ports['prometheus']}"}


def _label_studio() -> Component:
    from longtail_dev.infra.label_studio import LabelStudio  # its own module: it imports this one

    return LabelStudio()


COMPONENTS: dict[str, Callable[[], Component]] = {
    "kafka": Kafka,
    **{f"kafka-{i}": functools.partial(Kafka, i) for i in range(1, KAFKA_CLUSTER_NODES + 1)},
    "s3": S3,
    "postgres": Postgres,
    "triton": Triton,
    "prometheus": Prometheus,
    "label-studio": lambda: _label_studio(),
}
KAFKA_CLUSTER = tuple(f"kafka-{i}" for i in range(1, KAFKA_CLUSTER_NODES + 1))
DEFAULT = ("kafka", "s3", "postgres")


@dataclass
class Status:
    name: str
    pid: int | None
    running: bool
    ready: bool
    address: str
    log: str


class Launcher:
    """Starts, tracks and stops a set of components (`COMPONENTS` for `longtail infra`, the control
    plane's for `longtail k8s`), each set with its own state file."""

    def __init__(self, say: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr), components: dict[str, Callable[[], Component]] | None = None, state_name: str = "infra") -> None:
        self.say = say
        self.components = components if components is not None else COMPONENTS
        self.state_file = state_dir() / f"{state_name}.json"

    # -- state -------------------------------------------------------------------------------
    def _load(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)
        env = {}
        for entry in state.values():
            env.update(entry.get("env", {}))
        self.state_file.with_suffix(".env").write_text("".join(f"export {k}={v}\n" for k, v in sorted(env.items())))

    @staticmethod
    def _alive(entry: dict) -> bool:
        pid = entry.get("pid")
        if not pid:
            return False
        return _proc_start_time(pid) == entry.get("start_time")

    def _component(self, name: str, entry: dict | None) -> Component:
        """The component, on the ports it was started with while it runs: the LONGTAIL_*_PORT
        variables it was started with may not be set where it is looked at later."""
        comp = self.components[name]()
        if entry and self._alive(entry) and entry.get("ports"):
            comp.ports = {label: int(port) for label, port in entry["ports"].items()}
        return comp

    # -- verbs -------------------------------------------------------------------------------
    def up(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """Start what is not running; returns the environment that points services at it.

        On any failure, stops what this call started (nothing is left half-up) and raises InfraError.
        """
        names = list(names) if names is not None else list(DEFAULT if self.components is COMPONENTS else self.components)
        unknown = [n for n in names if n not in self.components]
        if unknown:
            raise InfraError(f"unknown component(s) {', '.join(unknown)}; choose from {', '.join(self.components)}")
        state = self._load()
        started: list[str] = []
        env: dict[str, str] = {}
        try:
            for name in names:
                entry = state.get(name)
                comp = self._component(name, entry)
                if entry and self._alive(entry) and comp.started():
                    self.say(f"{name}: already running (pid {entry['pid']}) on {comp.describe()}")
                    env.update(comp.env())
                    continue
                for label, port in comp.ports.items():
                    if port_in_use(port):
                        variable = f"LONGTAIL_{name.upper().replace('-', '_')}_{'PORT' if len(comp.ports) == 1 else label.upper() + '_PORT'}"
                        raise InfraError(f"{name}: port {port} ({label}) on 127.0.0.1 is already in use by another process; stop it or choose another port with {variable}")
                comp.install(self.say)
                comp.home.mkdir(parents=True, exist_ok=True)
                cmd, extra_env, kwargs = comp.command()
                log = comp.log_path.open("ab")
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **extra_env}, **kwargs)
                log.close()
                state[name] = {"pid": proc.pid, "start_time": _proc_start_time(proc.pid), "ports": comp.ports, "log": str(comp.log_path), "env": comp.env(), "started_at": time.time()}
                started.append(name)
                self._save(state)
                self.say(f"{name}: starting (pid {proc.pid}) ...")
                deadline = time.monotonic() + comp.ready_timeout
                while not comp.started():
                    if proc.poll() is not None:
                        raise InfraError(f"{name} exited with code {proc.returncode} during start-up; last lines of {comp.log_path}:\n{_tail(comp.log_path)}")
                    if time.monotonic() > deadline:
                        raise InfraError(f"{name} was not ready after {comp.ready_timeout:.0f}s; last lines of {comp.log_path}:\n{_tail(comp.log_path)}")
                    time.sleep(0.5)
                comp.after_ready()
                self.say(f"{name}: ready on {comp.describe()}")
                env.update(comp.env())
        except BaseException:
            if started:
                self.say(f"start-up failed: stopping what this run started ({', '.join(started)})")
                self.down(started)
            raise
        return env

    def down(self, names: Iterable[str] | None = None, timeout: float = 30.0) -> list[str]:
        """Stop the processes this launcher recorded (by pid and start time), newest first."""
        state = self._load()
        targets = [n for n in (list(names) if names is not None else list(state)) if n in state]
        stopped = []
        for name in reversed(targets):
            entry = state[name]
            if self._alive(entry):
                pid = entry["pid"]
                try:
                    os.killpg(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + timeout
                while self._alive(entry) and time.monotonic() < deadline:
                    self._reap(pid)
                    time.sleep(0.2)
                if self._alive(entry):
                    self.say(f"{name}: did not stop within {timeout:.0f}s, killing")
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self._reap(pid)
                self.say(f"{name}: stopped (pid {pid})")
                stopped.append(name)
            del state[name]
            self._save(state)
        return stopped

    def kill(self, name: str, timeout: float = 30.0) -> None:
        """SIGKILL a component's process group (a crash, for drills) and wait until it is gone
        (reaped, when this process started it: a zombie still holds e.g. PostgreSQL's lock file)."""
        entry = self._load().get(name)
        if not entry or not self._alive(entry):
            return
        try:
            os.killpg(entry["pid"], signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while self._alive(entry) and time.monotonic() < deadline:
            self._reap(entry["pid"])
            time.sleep(0.05)

    @staticmethod
    def _reap(pid: int) -> None:
        try:
            os.waitpid(pid, os.WNOHANG)  # only succeeds for our own children; avoids zombies
        except ChildProcessError:
            pass

    def status(self) -> list[Status]:
        state = self._load()
        rows = []
        for name in self.components:
            entry = state.get(name)
            comp = self._component(name, entry)
            running = self._alive(entry) if entry else False
            rows.append(Status(name, entry.get("pid") if entry else None, running, running and comp.ready(), comp.describe(), entry.get("log", "") if entry else ""))
        return rows

    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for entry in self._load().values():
            if self._alive(entry):
                env.update(entry.get("env", {}))
        return env
