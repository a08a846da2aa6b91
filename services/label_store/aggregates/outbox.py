"""The outbox: events committed with their changes, read and deleted by the publisher once
Kafka acknowledged them (at-least-once)."""

from __future__ import annotations

import sqlalchemy as sa

from label_store.db import outbox
from label_store.tx import Transactions


class Outbox:
    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def batch(self, limit: int = 500) -> list[tuple[int, str, str, bytes]]:
        with self.tx.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.value).order_by(outbox.c.id).limit(limit))]

    def delete(self, ids: list[int]) -> None:
        if ids:
            self.tx.run(lambda conn: conn.execute(outbox.delete().where(outbox.c.id.in_(ids))))
