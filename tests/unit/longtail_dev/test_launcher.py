"""Bad input to the infrastructure launcher: a clear error, and nothing left running."""

import socket
import sys

import pytest

from longtail_dev.infra import InfraError, Launcher
from longtail_dev.infra.launcher import Component, _port, port_in_use


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGTAIL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LONGTAIL_STATE_DIR", str(tmp_path / "state"))
    for var in ("LONGTAIL_KAFKA_PORT", "LONGTAIL_KAFKA_CONTROLLER_PORT", "LONGTAIL_S3_PORT"):
        monkeypatch.setenv(var, str(free_port()))
    return Launcher(say=lambda _m: None)


def test_missing_java_is_named_with_how_to_get_it(isolated, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(InfraError) as err:
        isolated.up(["kafka"])
    assert "`java` was not found" in str(err.value)
    assert "apt-get install openjdk-17" in str(err.value)
    assert isolated.status()[0].pid is None


def test_missing_go_is_named(isolated, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(InfraError, match="`go` was not found"):
        isolated.up(["s3"])


def test_port_taken_is_a_clear_error_and_nothing_starts(isolated, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.setenv("LONGTAIL_S3_PORT", str(port))
        with pytest.raises(InfraError) as err:
            isolated.up(["s3"])
    assert f"port {port}" in str(err.value) and "LONGTAIL_S3_PORT" in str(err.value)
    assert all(row.pid is None for row in isolated.status())


def test_unknown_component(isolated):
    with pytest.raises(InfraError, match="unknown component"):
        isolated.up(["redis"])


def test_bad_port_variable(isolated, monkeypatch):
    monkeypatch.setenv("LONGTAIL_S3_PORT", "ninety")
    with pytest.raises(InfraError, match="LONGTAIL_S3_PORT"):
        isolated.up(["s3"])


def test_kafka_cluster_ids_never_look_like_an_option():
    """One id in 64 used to start with '-', which kafka-storage format took for a flag (a red CI run)."""
    from longtail_dev.infra.launcher import kafka_cluster_id

    ids = [kafka_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)


def test_the_kafka_cluster_nodes_have_their_own_ports_one_quorum_and_replicated_defaults(isolated):
    from longtail_dev.infra import COMPONENTS, KAFKA_CLUSTER

    nodes = [COMPONENTS[name]() for name in KAFKA_CLUSTER]
    ports = [p for n in nodes for p in n.ports.values()] + list(COMPONENTS["kafka"]().ports.values())
    assert len(ports) == len(set(ports)), "the cluster runs beside the single broker"
    config = nodes[1]._write_config().read_text()
    assert "node.id=2\n" in config
    assert "controller.quorum.voters=" + ",".join(f"{i + 1}@127.0.0.1:{n.ports['controller']}" for i, n in enumerate(nodes)) in config
    for line in ("default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3", "unclean.leader.election.enable=false"):
        assert line + "\n" in config
    assert nodes[0].env() == {"KAFKA_BOOTSTRAP_SERVERS": nodes[0].bootstrap, "KAFKA_REPLICATION_FACTOR": "3", "KAFKA_MIN_INSYNC_REPLICAS": "2"}
    assert nodes[0].bootstrap.count(",") == 2
    single = COMPONENTS["kafka"]()
    assert "min.insync.replicas=1\n" in single._write_config().read_text() and single.env() == {"KAFKA_BOOTSTRAP_SERVERS": single.bootstrap}


class Echo(Component):
    """A stand-in component: Python's http.server on LONGTAIL_ECHO_PORT."""

    def __init__(self) -> None:
        super().__init__("echo", {"http": _port("LONGTAIL_ECHO_PORT", 1)})

    def command(self):
        return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(self.ports["http"])], {}, {}

    def ready(self) -> bool:
        return port_in_use(self.ports["http"])

    def env(self) -> dict[str, str]:
        return {"ECHO_URL": f"http://127.0.0.1:{self.ports['http']}"}


def test_a_component_started_on_its_own_port_is_reported_there_without_the_variable(isolated, monkeypatch):
    launcher = Launcher(say=lambda _m: None, components={"echo": Echo}, state_name="echo")
    port = free_port()
    monkeypatch.setenv("LONGTAIL_ECHO_PORT", str(port))
    try:
        assert launcher.up() == {"ECHO_URL": f"http://127.0.0.1:{port}"}
        monkeypatch.delenv("LONGTAIL_ECHO_PORT")  # another shell, without the variable
        [row] = launcher.status()
        assert row.running and row.ready and row.address == f"http 127.0.0.1:{port}"
        assert launcher.up() == {"ECHO_URL": f"http://127.0.0.1:{port}"}  # already running, there
    finally:
        assert launcher.down() == ["echo"]
    [row] = launcher.status()
    assert not row.running and row.address == "http 127.0.0.1:1"  # stopped: back to what the environment says
