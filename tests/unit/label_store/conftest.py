import pytest
from label_store_helpers import Clock

from label_store import db, schema
from label_store.store import LabelStore


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    engine = db.create_engine(f"sqlite:///{tmp_path / 'labels.db'}")
    db.migrate(engine)
    s = LabelStore(engine, clock=clock)
    s.tasks.ensure(schema.default_tasks())
    yield s
    engine.dispose()
