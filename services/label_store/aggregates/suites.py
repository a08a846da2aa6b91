"""Unit-test suites: versioned suite files, promotion of fleet samples to cases, evaluation of a
model version against them and the recorded results."""

from __future__ import annotations

import builtins
import functools

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from longtail import topics
from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import events_pb2 as E
from longtail.labels.v1 import labels_pb2 as L
from longtail.triggerlang import predicates

from label_store import suites
from label_store.aggregates.tasks import Tasks
from label_store.db import case_results, predictions, samples, suite_cases, suite_results
from label_store.db import suites as suites_t
from label_store.tx import StoreError, Transactions, set_time


class Suites:
    def __init__(self, tx: Transactions, tasks: Tasks) -> None:
        self.tx = tx
        self.tasks = tasks

    def _row(self, conn: Connection, name: str, version: int = 0):
        s = suites_t.c
        query = sa.select(suites_t).where(s.name == name)
        query = query.where(s.version == version) if version > 0 else query.order_by(s.version.desc()).limit(1)
        row = conn.execute(query).first()
        if row is None:
            raise StoreError("NOT_FOUND", f"no suite {name!r}" + (f" version {version}" if version > 0 else ""))
        return row

    def _cases(self, conn: Connection, name: str, version: int) -> list[L.SuiteCase]:
        c = suite_cases.c
        out = []
        for r in conn.execute(sa.select(suite_cases).where(c.suite == name, c.version == version).order_by(c.added_at_us, c.case_id)):
            case = L.SuiteCase(case_id=r.case_id, suite=name, sample_id=r.sample_id, predicate=r.predicate, note=r.note)
            set_time(case.added_at, r.added_at_us)
            out.append(case)
        return out

    def _message(self, conn: Connection, row, with_cases: bool) -> L.Suite:
        count = conn.execute(sa.select(sa.func.count()).select_from(suite_cases).where(suite_cases.c.suite == row.name, suite_cases.c.version == row.version)).scalar_one()
        suite = L.Suite(name=row.name, version=row.version, task=row.task, cases_count=count, description=row.description, source_yaml=row.source_yaml)
        set_time(suite.updated_at, row.updated_at_us)
        if with_cases:
            suite.cases.extend(self._cases(conn, row.name, row.version))
        return suite

    def _write(self, parsed: suites.SuiteFile, source: str) -> tuple[L.Suite, bool]:
        def work(conn: Connection):
            now = self.tx.now_us()
            try:
                latest = self._row(conn, parsed.name)
            except StoreError:
                latest = None
            fp = suites.fingerprint(parsed.task, parsed.description, parsed.cases, parsed.name)
            if latest is not None and latest.fingerprint == fp:
                return self._message(conn, latest, False), False
            if latest is not None and latest.task != parsed.task:
                raise StoreError("INVALID_ARGUMENT", f"task: suite {parsed.name} tests task {latest.task!r}; a suite cannot change task")
            added = {}
            if latest is not None:
                added = {c.case_id: c.added_at.ToMicroseconds() for c in self._cases(conn, latest.name, latest.version)}
            version = (latest.version if latest else 0) + 1
            conn.execute(suites_t.insert().values(name=parsed.name, version=version, task=parsed.task, description=parsed.description, source_yaml=source, fingerprint=fp, updated_at_us=now))
            rows = []
            for c in parsed.cases:
                cid = suites.case_id(parsed.name, c.sample_id, c.predicate)
                rows.append(dict(suite=parsed.name, version=version, case_id=cid, sample_id=c.sample_id, predicate=c.predicate, note=c.note, added_at_us=added.get(cid, now)))
            if rows:
                conn.execute(suite_cases.insert(), rows)
            return self._message(conn, self._row(conn, parsed.name, version), False), True

        return self.tx.run(work)

    def _check_refs(self, parsed: suites.SuiteFile) -> None:
        with self.tx.connect() as conn:
            try:
                self.tasks.load(conn, parsed.task)
            except StoreError as exc:
                raise StoreError("INVALID_ARGUMENT", f"task: {exc}") from None
            ids = sorted({c.sample_id for c in parsed.cases})
            known = set()
            for i in range(0, len(ids), 500):
                known |= {r[0] for r in conn.execute(sa.select(samples.c.sample_id).where(samples.c.sample_id.in_(ids[i : i + 500])))}
        for c in parsed.cases:
            if c.sample_id not in known:
                raise StoreError("INVALID_ARGUMENT", f"line {c.line}: sample {c.sample_id} is not registered in the label store")

    def upsert(self, source: str) -> tuple[L.Suite, bool]:
        try:
            parsed = suites.parse(source)
        except suites.SuiteFileError as exc:
            raise StoreError("INVALID_ARGUMENT", str(exc)) from None
        self._check_refs(parsed)
        return self._write(parsed, source)

    def get(self, name: str, version: int = 0) -> L.Suite:
        with self.tx.connect() as conn:
            return self._message(conn, self._row(conn, name, version), True)

    def list(self, task: str = "") -> list[L.Suite]:
        s = suites_t.c
        latest = sa.select(s.name, sa.func.max(s.version).label("v")).group_by(s.name).subquery()
        query = sa.select(suites_t).join(latest, sa.and_(s.name == latest.c.name, s.version == latest.c.v)).order_by(s.name)
        if task:
            query = query.where(s.task == task)
        with self.tx.connect() as conn:
            return [self._message(conn, r, False) for r in conn.execute(query)]

    def promote(self, suite: str, sample_id: str, predicate: str, note: str = "") -> tuple[L.SuiteCase, L.Suite, bool]:
        """Add a (failing) fleet sample to a suite as a new case: a new suite version."""
        try:
            suites.check_predicate(predicate.strip())
        except suites.SuiteFileError as exc:
            raise StoreError("INVALID_ARGUMENT", str(exc)) from None
        predicate = predicate.strip()
        with self.tx.connect() as conn:
            row = self._row(conn, suite)
            if conn.execute(sa.select(samples.c.sample_id).where(samples.c.sample_id == sample_id)).first() is None:
                raise StoreError("NOT_FOUND", f"no sample {sample_id!r}")
            cases = self._cases(conn, row.name, row.version)
        cid = suites.case_id(suite, sample_id, predicate)
        parsed = suites.SuiteFile(row.name, row.task, row.description, [suites.Case(c.sample_id, c.predicate, c.note) for c in cases])
        existed = any(c.case_id == cid for c in cases)
        if not existed:
            parsed.cases.append(suites.Case(sample_id, predicate, note))
            message, _ = self._write(parsed, suites.render(parsed))
        else:
            with self.tx.connect() as conn:
                message = self._message(conn, row, False)
        with self.tx.connect() as conn:
            [case] = [c for c in self._cases(conn, message.name, message.version) if c.case_id == cid]
        return case, message, existed

    def evaluate(self, model: C.ModelRef, names: builtins.list[str], supplied: builtins.list[L.CasePredictions], record: bool) -> builtins.list[L.SuiteResult]:  # `list`: the method
        if not model.name or model.version <= 0:
            raise StoreError("INVALID_ARGUMENT", "model: needs a name and a positive version")
        given: dict[tuple[str, str], C.TaskPrediction] = {}
        for cp in supplied:
            for task, prediction in cp.predictions.items():
                given[(cp.sample_id, task)] = prediction
        with self.tx.connect() as conn:
            rows = [self._row(conn, n) for n in dict.fromkeys(names)] if names else [self._row(conn, s.name, s.version) for s in self.list()]
            plan = [(row, self._cases(conn, row.name, row.version)) for row in rows]
            if not supplied:
                p = predictions.c
                wanted = sorted({c.sample_id for _, cases in plan for c in cases})
                for i in range(0, len(wanted), 500):
                    for sid, task, proto in conn.execute(sa.select(p.sample_id, p.task, p.proto).where(p.sample_id.in_(wanted[i : i + 500]), p.model_name == model.name, p.model_version == model.version)):
                        given[(sid, task)] = C.TaskPrediction.FromString(proto)
                if wanted and not given:
                    raise StoreError("FAILED_PRECONDITION", f"no predictions supplied and none stored for model {model.name}:{model.version} (inference.results.v1); pass predictions in the request")
        results = []
        now = self.tx.now_us()
        for row, cases in plan:
            result = L.SuiteResult(suite=row.name, suite_version=row.version, model=model)
            set_time(result.evaluated_at, now)
            for case in cases:
                outcome = predicates.evaluate(case.predicate, given.get((case.sample_id, row.task)))
                result.case_results.add(case_id=case.case_id, sample_id=case.sample_id, passed=outcome.passed, detail=outcome.detail)
                if outcome.passed:
                    result.passed += 1
                else:
                    result.failed_case_ids.append(case.case_id)
            result.total = len(cases)
            result.pass_rate = result.passed / result.total if result.total else 0.0
            results.append(result)
        if record:
            for result in results:
                self.tx.run(functools.partial(self._record, result=result, now=now))
        return results

    def _record(self, conn: Connection, result: L.SuiteResult, now: int) -> None:
        r = suite_results.c
        key = (r.suite == result.suite, r.suite_version == result.suite_version, r.model_name == result.model.name, r.model_version == result.model.version)
        old = conn.execute(sa.select(r.id).where(*key)).scalar()
        if old is not None:  # re-evaluating the same model on the same suite version replaces the run
            conn.execute(case_results.delete().where(case_results.c.result_id == old))
            conn.execute(suite_results.delete().where(r.id == old))
        key_row = conn.execute(
            suite_results.insert().values(suite=result.suite, suite_version=result.suite_version, model_name=result.model.name, model_version=result.model.version, passed=result.passed, total=result.total, evaluated_at_us=now)
        ).inserted_primary_key
        assert key_row is not None  # a single-row insert
        rid = key_row[0]
        if result.case_results:
            conn.execute(case_results.insert(), [dict(result_id=rid, case_id=c.case_id, sample_id=c.sample_id, passed=c.passed, detail=c.detail[:2000]) for c in result.case_results])
        event = L.SuiteResult()
        event.CopyFrom(result)
        event.ClearField("case_results")
        self.tx.emit(conn, topics.SUITES_EVALUATED, result.model.name, E.SuiteEvaluated(result=event))

    def report(self, suite: str = "", model_name: str = "", last_versions: int = 0) -> builtins.list[L.SuiteResult]:
        """Per (suite, model version): the latest recorded run; newest model versions first."""
        r = suite_results.c
        query = sa.select(suite_results)
        if suite:
            query = query.where(r.suite == suite)
        if model_name:
            query = query.where(r.model_name == model_name)
        with self.tx.connect() as conn:
            runs = list(conn.execute(query.order_by(r.suite_version, r.evaluated_at_us, r.id)))
            failed: dict[int, list[str]] = {}
            latest = {}
            for run in runs:  # later suite versions / later runs overwrite earlier ones
                latest[(run.suite, run.model_name, run.model_version)] = run
            ids = [run.id for run in latest.values()]
            for i in range(0, len(ids), 500):
                for rid, cid in conn.execute(sa.select(case_results.c.result_id, case_results.c.case_id).where(case_results.c.result_id.in_(ids[i : i + 500]), case_results.c.passed == sa.false())):
                    failed.setdefault(rid, []).append(cid)
        keep_versions: dict[str, set[int]] = {}
        if last_versions:
            by_model: dict[str, set[int]] = {}
            for _, m, v in latest:
                by_model.setdefault(m, set()).add(v)
            keep_versions = {m: set(sorted(vs, reverse=True)[:last_versions]) for m, vs in by_model.items()}
        out = []
        for (s, m, v), run in sorted(latest.items(), key=lambda kv: (kv[0][1], -kv[0][2], kv[0][0])):
            if last_versions and v not in keep_versions[m]:
                continue
            result = L.SuiteResult(
                suite=s, suite_version=run.suite_version, model=C.ModelRef(name=m, version=v), passed=run.passed, total=run.total, pass_rate=run.passed / run.total if run.total else 0.0, failed_case_ids=sorted(failed.get(run.id, []))
            )
            set_time(result.evaluated_at, run.evaluated_at_us)
            out.append(result)
        return out
