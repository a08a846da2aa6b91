"""The shared transaction helper: retries on lost races only, outbox writes share the transaction."""

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError

from longtail import topics
from longtail.labels.v1 import events_pb2 as E


def test_a_lost_race_is_retried(store):
    calls = []

    def work(conn):
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
        return "ok"

    assert store.tx.run(work) == "ok" and len(calls) == 2


def test_a_non_transient_error_is_not_retried(store):
    calls = []

    def work(conn):
        calls.append(1)
        raise OperationalError("SELECT", {}, Exception("no such table: x"))

    with pytest.raises(OperationalError):
        store.tx.run(work)
    assert len(calls) == 1


def test_an_event_is_dropped_with_its_rolled_back_change(store):
    def work(conn):
        store.tx.emit(conn, topics.SAMPLES_REGISTERED, "k", E.SampleRegistered())
        raise ValueError("the change fails after the event was written")

    with pytest.raises(ValueError):
        store.tx.run(work)
    assert store.outbox.batch() == []
