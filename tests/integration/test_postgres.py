import uuid

import sqlalchemy


def test_postgres_accepts_the_launcher_dsn(postgres):
    assert postgres.startswith("postgresql+psycopg://")
    engine = sqlalchemy.create_engine(postgres)
    table = f"t_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"create table {table} (id int primary key, v text)"))
        conn.execute(sqlalchemy.text(f"insert into {table} values (1, 'stop sign')"))
    with engine.begin() as conn:
        assert conn.execute(sqlalchemy.text(f"select v from {table} where id = 1")).scalar_one() == "stop sign"
        conn.execute(sqlalchemy.text(f"drop table {table}"))
    engine.dispose()
