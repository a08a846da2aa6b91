"""The one transaction helper every label-store aggregate shares: retried transactions, the
clock, and the outbox write (in the caller's transaction, so an event exists iff its change
committed). Failures a caller can act on raise StoreError with the gRPC status code name and a
message naming the offending field or object.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from longtail import topics

from label_store.db import is_sqlite, outbox

MAX_ID = 200
T = TypeVar("T")


class StoreError(Exception):
    """A request the store refuses; `code` is a grpc.StatusCode name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def set_time(message, micros: int) -> None:
    """Fill a google.protobuf.Timestamp or Duration from integer microseconds (the stored unit)."""
    message.FromMicroseconds(int(micros))


def check_id(value: str, field: str) -> str:
    if not value:
        raise StoreError("INVALID_ARGUMENT", f"{field} is empty")
    if len(value) > MAX_ID:
        raise StoreError("INVALID_ARGUMENT", f"{field} is longer than {MAX_ID} characters")
    return value


class Transactions:
    def __init__(self, engine: Engine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.sqlite = is_sqlite(engine)

    def now_us(self) -> int:
        return int(self.clock() * 1_000_000)

    def connect(self) -> Connection:
        """A connection for reads."""
        return self.engine.connect()

    def run(self, work: Callable[[Connection], T], retries: int = 5) -> T:
        """Run `work` in a transaction; retry on a lost race (unique key) or a transient lock error."""
        for attempt in range(retries):
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except (IntegrityError, OperationalError) as exc:
                transient = isinstance(exc, IntegrityError) or "locked" in str(exc) or "deadlock" in str(exc).lower() or "could not serialize" in str(exc)
                if not transient or attempt == retries - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise ValueError(f"retries must be at least 1, not {retries}")

    def emit(self, conn: Connection, topic: topics.Topic, key: str, value) -> None:
        """Queue an event in the outbox table, inside the caller's transaction."""
        conn.execute(outbox.insert().values(topic=topic.name, key=key, value=value.SerializeToString(), created_at_us=self.now_us()))
