"""The shared producer and batch consumer against the real broker."""

import uuid

import pytest

from longtail import topics
from longtail.kafka import BatchConsumer, Producer, RecordError, start_group_at_end
from longtail.ops.v1 import events_pb2 as ops_events

from longtail_dev.smoke import telemetry_batch


def drain(consumer, until, max_polls=120):
    for _ in range(max_polls):
        consumer.poll_once()
        if until():
            return True
    return False


def dead_letters_for(kafka, vehicle_keys, count):
    """Read the dead-letter topic from the start with a fresh group; keep letters of our keys."""
    found = []

    def handle(records):
        for r in records:
            letter = r.value
            # At-least-once: a commit that fails (e.g. while a fresh broker elects the group
            # coordinator) re-delivers, and the record is dead-lettered again. One per source record.
            if letter.key.decode() in vehicle_keys and all((d.source_partition, d.source_offset) != (letter.source_partition, letter.source_offset) for d in found):
                found.append(letter)

    producer = Producer(kafka, "test-dlq-reader")
    reader = BatchConsumer(kafka, f"test-dlq-{uuid.uuid4().hex[:8]}", [topics.DEAD_LETTERS], handle, producer)
    drain(reader, lambda: len(found) >= count)
    reader.close()
    producer.close()
    return found


def test_telemetry_batch_round_trips_intact(kafka):
    vehicle = f"car-{uuid.uuid4().hex[:8]}"
    sent = telemetry_batch(vehicle, 100, 200)
    producer = Producer(kafka, "test")
    producer.produce(topics.TELEMETRY, vehicle, sent)
    producer.flush()

    got = []
    consumer = BatchConsumer(kafka, f"test-{uuid.uuid4().hex[:8]}", [topics.TELEMETRY], lambda rs: got.extend(r for r in rs if r.key == vehicle), producer)
    assert drain(consumer, lambda: got)
    consumer.close()
    producer.close()
    assert got[0].value == sent
    assert len(got[0].value.frames) == 200
    assert ("message-type", b"longtail.fleet.v1.TelemetryBatchEvent") in got[0].headers


def test_malformed_record_is_dead_lettered_and_the_next_good_one_processed(kafka):
    group = f"test-{uuid.uuid4().hex[:8]}"
    bad_vehicle, good_vehicle = f"bad-{uuid.uuid4().hex[:6]}", f"good-{uuid.uuid4().hex[:6]}"
    producer = Producer(kafka, "test")
    # Same key, so the same partition: the bad record comes right before the good one (the topic
    # holds other tests' records; a different partition could still be unread when the good one is).
    # Not a protobuf: 0xff starts a field tag whose varint never ends.
    producer.produce_bytes(topics.TELEMETRY.name, bad_vehicle, b"\xff\xff\xff\xff")
    producer.produce(topics.TELEMETRY, bad_vehicle, telemetry_batch(good_vehicle, 0, 3))
    producer.flush()

    processed = []
    consumer = BatchConsumer(kafka, group, [topics.TELEMETRY], lambda rs: processed.extend(r.value.vehicle_id for r in rs if r.key == bad_vehicle), producer)
    assert drain(consumer, lambda: good_vehicle in processed)
    consumer.close()
    assert processed == [good_vehicle]  # the next record after the bad one, and only it

    [letter] = dead_letters_for(kafka, {bad_vehicle}, 1)
    assert letter.source_topic == topics.TELEMETRY.name
    assert letter.value == b"\xff\xff\xff\xff"
    assert "cannot decode as longtail.fleet.v1.TelemetryBatchEvent" in letter.error
    assert letter.consumer_group == group
    producer.close()


def test_record_the_handler_rejects_is_dead_lettered_and_the_rest_processed(kafka):
    vehicles = [f"v{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
    poison = vehicles[2]
    producer = Producer(kafka, "test")
    bad = telemetry_batch(poison, 0, 1)
    bad.frames[0].ego.x = float("nan")
    producer.produce(topics.TELEMETRY, poison, bad)  # before the same car's good batch: same partition
    for v in vehicles:
        producer.produce(topics.TELEMETRY, v, telemetry_batch(v, 1, 1))
    producer.flush()

    processed = []

    def handle(records):
        mine = [r for r in records if r.key in vehicles]
        for r in mine:
            if r.value.frames[0].ego.x != r.value.frames[0].ego.x:
                raise RecordError(f"frames[0].ego.x is NaN in {r.key}")
        processed.extend((r.key, r.value.frames[0].sequence) for r in mine)

    consumer = BatchConsumer(kafka, f"test-{uuid.uuid4().hex[:8]}", [topics.TELEMETRY], handle, producer)
    assert drain(consumer, lambda: {(v, 1) for v in vehicles} <= set(processed))
    consumer.close()
    assert (poison, 0) not in processed  # rejected; the batch around it and the car's next batch went through
    [letter] = dead_letters_for(kafka, {poison}, 1)
    assert "RecordError: frames[0].ego.x is NaN" in letter.error
    producer.close()


def test_a_dependency_away_for_a_moment_is_waited_for_not_dead_lettered_nor_fatal(kafka):
    """A handler failing for a reason other than the record (its database restarting) gets the
    record again after a backoff; past `outage_patience_s` the error propagates uncommitted."""
    vehicle, group = f"car-{uuid.uuid4().hex[:8]}", f"test-{uuid.uuid4().hex[:8]}"
    start_group_at_end(kafka, group, [topics.TELEMETRY])  # not the shared broker's history (other tests' garbage)
    producer = Producer(kafka, "test")
    producer.produce(topics.TELEMETRY, vehicle, telemetry_batch(vehicle, 0, 1))
    producer.flush()
    attempts, processed = [], []

    def handle(records):
        mine = [r for r in records if r.key == vehicle]
        if mine and len(attempts) < 3:
            attempts.append(mine[0].offset)
            raise ConnectionError("database restarting")
        processed.extend(r.key for r in mine)

    consumer = BatchConsumer(kafka, group, [topics.TELEMETRY], handle, producer)
    assert drain(consumer, lambda: processed)
    consumer.close()
    assert processed == [vehicle] and len(attempts) == 3  # the batch, then the record twice more
    assert consumer.dead_lettered == 0

    def down(records):
        if any(r.key == vehicle for r in records):
            raise ConnectionError("database gone")

    group = f"test-{uuid.uuid4().hex[:8]}"
    stuck = BatchConsumer(kafka, group, [topics.TELEMETRY], down, producer, outage_patience_s=1.0)
    with pytest.raises(ConnectionError):
        drain(stuck, lambda: False)
    stuck.close()
    seen = []
    after = BatchConsumer(kafka, group, [topics.TELEMETRY], lambda rs: seen.extend(r.key for r in rs), producer)
    assert drain(after, lambda: vehicle in seen)  # not committed: the restarted consumer gets it
    after.close()
    producer.close()


def test_committed_offsets_mean_a_restarted_consumer_does_not_reprocess(kafka):
    vehicle = f"car-{uuid.uuid4().hex[:8]}"
    group = f"test-{uuid.uuid4().hex[:8]}"
    producer = Producer(kafka, "test")
    producer.produce(topics.TELEMETRY, vehicle, telemetry_batch(vehicle, 0, 1))
    producer.flush()
    seen = []
    first = BatchConsumer(kafka, group, [topics.TELEMETRY], lambda rs: seen.extend(r.key for r in rs if r.key == vehicle), producer)
    assert drain(first, lambda: seen)
    first.close()

    second_vehicle = f"car-{uuid.uuid4().hex[:8]}"
    producer.produce(topics.TELEMETRY, second_vehicle, telemetry_batch(second_vehicle, 0, 1))
    producer.flush()
    again = []
    second = BatchConsumer(kafka, group, [topics.TELEMETRY], lambda rs: again.extend(r.key for r in rs), producer)
    assert drain(second, lambda: second_vehicle in again)
    second.close()
    assert vehicle not in again
    producer.close()


def test_a_new_group_started_at_the_end_skips_the_history(kafka):
    old, new = f"car-{uuid.uuid4().hex[:8]}", f"car-{uuid.uuid4().hex[:8]}"
    group = f"test-{uuid.uuid4().hex[:8]}"
    producer = Producer(kafka, "test")
    producer.produce(topics.TELEMETRY, old, telemetry_batch(old, 0, 1))
    producer.flush()
    assert start_group_at_end(kafka, group, [topics.TELEMETRY]) == topics.TELEMETRY.partitions
    producer.produce(topics.TELEMETRY, new, telemetry_batch(new, 0, 1))
    producer.flush()
    seen = []
    consumer = BatchConsumer(kafka, group, [topics.TELEMETRY], lambda rs: seen.extend(r.key for r in rs), producer)
    assert drain(consumer, lambda: new in seen)
    consumer.close()
    producer.close()
    assert old not in seen


def test_wrong_value_type_is_refused_before_it_reaches_kafka(kafka):
    producer = Producer(kafka, "test")
    try:
        import pytest

        with pytest.raises(TypeError, match="fleet.telemetry.v1 holds TelemetryBatchEvent"):
            producer.produce(topics.TELEMETRY, "k", ops_events.DeadLetter())
    finally:
        producer.close()


def test_topics_exist_with_registry_partitions_and_compaction(kafka):
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": kafka})
    meta = admin.list_topics(timeout=10).topics
    for topic in topics.ALL:
        assert topic.name in meta, topic.name
        assert len(meta[topic.name].partitions) == topic.partitions
    resource = ConfigResource("topic", topics.TRIGGER_CATALOG.name)
    config = admin.describe_configs([resource])[resource].result()
    assert config["cleanup.policy"].value == "compact"
