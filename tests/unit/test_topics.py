import pytest

from longtail import topics
from longtail.fleet.v1 import events_pb2 as fleet_events
from longtail.topics import ALL, Topic, by_name


def test_registry_names_follow_the_convention():
    assert len(ALL) >= 15
    for topic in ALL:
        assert "_" not in topic.name, topic.name
        assert topics.NAME_RULE.match(topic.name), topic.name
        assert topic.partitions >= 1


def test_names_are_unique_even_when_kafka_folds_dots_and_underscores():
    folded = [t.name.replace(".", "_") for t in ALL]
    assert len(set(folded)) == len(folded)


def test_catalogs_are_compacted_and_streams_are_not():
    assert topics.TRIGGER_CATALOG.compacted
    assert topics.TRIGGER_CATALOG.kafka_config()["cleanup.policy"] == "compact"
    assert topics.MAP_FEATURES.compacted
    assert not topics.TELEMETRY.compacted
    assert topics.TELEMETRY.kafka_config()["cleanup.policy"] == "delete"


def test_value_types_are_protobuf_events_of_the_same_version():
    for topic in ALL:
        assert topic.value_type.DESCRIPTOR.full_name.startswith("longtail.")
        assert topic.value_type.DESCRIPTOR.full_name.split(".")[-2] == topic.name.rsplit(".", 1)[1]


@pytest.mark.parametrize("name", ["fleet_telemetry.v1", "fleet.telemetry", "Fleet.telemetry.v1", "telemetry.v1.x", "fleet.telemetry.v0"])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError):
        Topic(name, fleet_events.TelemetryBatchEvent, key="vehicle_id", partitions=1)


def test_version_must_match_the_value_package():
    with pytest.raises(ValueError, match="v2"):
        Topic("fleet.telemetry.v2", fleet_events.TelemetryBatchEvent, key="vehicle_id", partitions=1)


def test_lookup_by_name():
    assert by_name("fleet.telemetry.v1") is topics.TELEMETRY
    with pytest.raises(KeyError, match="unknown topic"):
        by_name("fleet.nope.v1")
