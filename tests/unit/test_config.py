import pytest

from longtail.config import ConfigError, KafkaSettings, S3Settings, ServiceSettings, load


def test_missing_variable_is_named(monkeypatch):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(ConfigError) as err:
        load(KafkaSettings)
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in str(err.value)
    assert "e.g. 127.0.0.1:19092" in str(err.value)


@pytest.mark.parametrize("value", ["localhost", "host:", ":9092", "host:99999", "a:1,b"])
def test_malformed_servers_are_rejected_with_the_variable(monkeypatch, value):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", value)
    with pytest.raises(ConfigError, match="KAFKA_BOOTSTRAP_SERVERS is invalid"):
        load(KafkaSettings)


def test_every_missing_variable_is_listed(monkeypatch):
    for var in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigError) as err:
        load(S3Settings)
    for var in ("S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"):
        assert var in str(err.value)


def test_valid_environment_loads_typed_values(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092,127.0.0.2:19092")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "3")
    settings = load(KafkaSettings)
    assert settings.replication_factor == 3


def test_bad_port_is_named(monkeypatch):
    monkeypatch.setenv("METRICS_PORT", "lots")
    with pytest.raises(ConfigError, match="METRICS_PORT is invalid"):
        load(ServiceSettings)


def test_min_insync_replicas_defaults_from_the_replication_factor_and_never_exceeds_it(monkeypatch):
    from longtail.topics import min_insync

    assert [min_insync(rf) for rf in (1, 2, 3, 5)] == [1, 1, 2, 2]
    assert min_insync(3, 3) == 3
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    monkeypatch.setenv("KAFKA_REPLICATION_FACTOR", "2")
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "3")
    with pytest.raises(ConfigError, match=r"KAFKA_MIN_INSYNC_REPLICAS \(3\) exceeds KAFKA_REPLICATION_FACTOR \(2\)"):
        load(KafkaSettings)
    monkeypatch.setenv("KAFKA_MIN_INSYNC_REPLICAS", "2")
    assert load(KafkaSettings).min_insync_replicas == 2
