"""The label store over SQLAlchemy Core (one code path for SQLite and PostgreSQL): its aggregates
wired over one shared transaction helper. Callers use the aggregates directly
(`store.queue.next_task(...)`); every public method is synchronous and runs in its own
transaction (the gRPC servicer calls it on a worker thread).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine

from label_store.aggregates.datasets import Datasets
from label_store.aggregates.outbox import Outbox
from label_store.aggregates.queue import Queue
from label_store.aggregates.samples import Samples
from label_store.aggregates.suites import Suites
from label_store.aggregates.tasks import Tasks
from label_store.tx import Transactions


class LabelStore:
    def __init__(self, engine: Engine, objects=None, clock: Callable[[], float] = time.time, default_lease_s: float = 600.0) -> None:
        self.tx = Transactions(engine, clock)
        self.tasks = Tasks(self.tx)
        self.samples = Samples(self.tx)
        self.queue = Queue(self.tx, self.tasks, self.samples, default_lease_s)
        self.datasets = Datasets(self.tx, self.tasks, self.samples, objects)
        self.suites = Suites(self.tx, self.tasks)
        self.outbox = Outbox(self.tx)
