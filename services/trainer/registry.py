"""The model registry: which versions exist, which is PRODUCTION, which were refused, and the runs.

Sources of truth, so the trainer itself is stateless and a restart loses nothing:

- published versions: the Triton model repository (`models/<name>/<version>/manifest.json`,
  `longtail.model_repo`); the manifest's `trainer` section carries the run, kind, gate report and
  suite results;
- roles: the `models.published.v1` topic, read from the beginning (as inference and the gateway
  do): the last PRODUCTION event of a name is its production version, earlier ones are retired;
- refused versions: `trainer/refused/<name>/<version>/{model.pt,version.json}` — kept with their
  gate report so an operator sees why, never in the Triton repository;
- runs: `trainer/runs/<run_id>.json` (the `Run` message as JSON), rewritten at every phase.

Version numbers are allocated by the trainer across published *and* refused versions, so a refused
candidate keeps its number (the published sequence then has a gap, which Triton allows).
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from dataclasses import dataclass, field

from google.protobuf import json_format

from longtail import model_repo
from longtail.common.v1 import common_pb2 as C
from longtail.labels.v1 import labels_pb2 as L
from longtail.models.v1 import events_pb2 as E
from longtail.models.v1 import trainer_pb2 as T
from longtail.storage import MODELS, ObjectStore

RUNS = "trainer/runs/"
REFUSED = "trainer/refused/"


def _missing(exc: Exception) -> bool:
    return getattr(exc, "code", "") in ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound")


@dataclass
class RoleHistory:
    """What models.published.v1 says about one model name."""

    production: list[tuple[int, float]] = field(default_factory=list)  # (version, published_at) in order
    candidates: set[int] = field(default_factory=set)
    detector: bool = False

    @property
    def current(self) -> int:
        return self.production[-1][0] if self.production else 0


class Registry:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.roles: dict[str, RoleHistory] = {}
        self._lock = threading.RLock()
        self._reserved: dict[str, int] = {}

    # -- roles (fed by the models.published.v1 follower) ---------------------------------------
    def on_published(self, _key, event: E.ModelPublished | None) -> None:
        if event is None:
            return
        with self._lock:
            h = self.roles.setdefault(event.model.name, RoleHistory())
            at = event.published_at.ToSeconds() if event.HasField("published_at") else time.time()
            if event.role == C.MODEL_ROLE_PRODUCTION:
                if h.current != event.model.version:
                    h.production.append((event.model.version, at))
            elif event.role == C.MODEL_ROLE_CANDIDATE:
                h.candidates.add(event.model.version)
            elif event.role == C.MODEL_ROLE_TRIGGER_DETECTOR:
                h.detector = True

    def production(self, name: str) -> int:
        with self._lock:
            h = self.roles.get(name)
            return h.current if h else 0

    def previous_production(self, name: str) -> int:
        """The production version before the current one (rollback target), 0 if none."""
        with self._lock:
            h = self.roles.get(name)
            if not h:
                return 0
            current = h.current
            for version, _ in reversed(h.production):
                if version != current:
                    return version
            return 0

    def names(self) -> list[str]:
        names = set(self.roles)
        for key in self.store.list(MODELS):
            parts = key[len(MODELS) :].split("/")
            if len(parts) >= 2:
                names.add(parts[0])
        for key in self.store.list(REFUSED):
            parts = key[len(REFUSED) :].split("/")
            if len(parts) >= 2:
                names.add(parts[0])
        return sorted(names)

    # -- versions ----------------------------------------------------------------------------------
    def refused_versions(self, name: str) -> list[int]:
        out = set()
        for key in self.store.list(f"{REFUSED}{name}/"):
            parts = key[len(REFUSED) :].split("/")
            if len(parts) == 3 and parts[1].isdigit() and parts[2] == "version.json":
                out.add(int(parts[1]))
        return sorted(out)

    def allocate(self, name: str) -> int:
        """The next version number of `name` (published, refused and reserved ones are taken)."""
        with self._lock:
            taken = model_repo.list_versions(self.store, name) + self.refused_versions(name) + [self._reserved.get(name, 0)]
            version = max(taken) + 1
            self._reserved[name] = version
            return version

    def reserve(self, name: str, version: int) -> None:
        """Keep `version` of `name` from being allocated again (a run queued again after a restart owns it)."""
        with self._lock:
            self._reserved[name] = max(self._reserved.get(name, 0), int(version))

    def save_refused(self, mv: T.ModelVersion, weights: bytes) -> None:
        prefix = f"{REFUSED}{mv.model.name}/{mv.model.version}/"
        self.store.put_at(prefix + "model.pt", weights)
        self.store.put_at(prefix + "version.json", json_format.MessageToJson(mv).encode(), "application/json")

    def _state(self, name: str, version: int) -> T.ModelState:
        with self._lock:
            h = self.roles.get(name)
        if h is None:
            return T.MODEL_STATE_CANDIDATE
        if h.current == version:
            return T.MODEL_STATE_PRODUCTION
        if any(v == version for v, _ in h.production):
            return T.MODEL_STATE_RETIRED
        return T.MODEL_STATE_CANDIDATE

    def get(self, name: str, version: int) -> T.ModelVersion | None:
        """A version of `name` (published or refused), None if unknown. version 0 = production."""
        if version <= 0:
            version = self.production(name)
            if version <= 0:
                return None
        try:
            manifest = json.loads(self.store.get(model_repo.file_key(name, version, model_repo.MANIFEST_FILE)))
        except Exception as exc:
            if not _missing(exc):
                raise
            manifest = None
        if manifest is not None:
            return self._from_manifest(manifest)
        try:
            data = self.store.get(f"{REFUSED}{name}/{version}/version.json")
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return json_format.Parse(data, T.ModelVersion(), ignore_unknown_fields=True)

    def _from_manifest(self, m: dict) -> T.ModelVersion:
        name, version = m["name"], int(m["version"])
        info = m.get("trainer") or {}
        mv = T.ModelVersion(
            model=C.ModelRef(name=name, version=version),
            kind=info.get("kind", T.RUN_KIND_MULTITASK),
            detector_name=info.get("detector_name", ""),
            tasks=[t["name"] for t in m.get("tasks", [])],
            repository_key=model_repo.version_prefix(name, version),
            config_key=model_repo.config_key(name),
            weights_key=model_repo.file_key(name, version, model_repo.WEIGHTS_FILE),
            manifest_key=model_repo.file_key(name, version, model_repo.MANIFEST_FILE),
            sha256=m["files"][model_repo.WEIGHTS_FILE]["sha256"],
            size_bytes=int(m["files"][model_repo.WEIGHTS_FILE]["size"]),
            run_id=m.get("run_id", ""),
        )
        if m.get("parent"):
            mv.parent.CopyFrom(C.ModelRef(name=name, version=int(m["parent"])))
        for d in m.get("datasets", []):
            if d.get("name") and int(d.get("version", 0) or 0) > 0:
                mv.datasets.add(name=d["name"], version=int(d["version"]))
        for k, v in (m.get("metrics") or {}).items():
            try:
                mv.metrics[k] = float(v)
            except (TypeError, ValueError):
                pass
        for r in info.get("suite_results", []):
            mv.suite_results.append(json_format.ParseDict(r, L.SuiteResult(), ignore_unknown_fields=True))
        if info.get("gate_report"):
            mv.gate_report.CopyFrom(json_format.ParseDict(info["gate_report"], T.GateReport(), ignore_unknown_fields=True))
        mv.created_at.FromSeconds(int(m.get("created_at", 0)))
        mv.state = self._state(name, version)
        if mv.kind == T.RUN_KIND_TRIGGER_DETECTOR and mv.state == T.MODEL_STATE_CANDIDATE:
            mv.state = T.MODEL_STATE_PRODUCTION  # a published detector is live (beamed with its triggers)
        with self._lock:
            h = self.roles.get(name)
            promoted = [at for v, at in (h.production if h else []) if v == version]
        if promoted:
            mv.promoted_at.FromSeconds(int(promoted[-1]))
        return mv

    def list(self, name: str = "") -> list[T.ModelVersion]:
        """Every version (newest first) of `name`, or of every name."""
        out = []
        for n in [name] if name else self.names():
            versions = set(model_repo.list_versions(self.store, n)) | set(self.refused_versions(n))
            for v in sorted(versions, reverse=True):
                mv = self.get(n, v)
                if mv is not None:
                    out.append(mv)
        return out

    def published_version(self, name: str, version: int) -> model_repo.PublishedVersion:
        """The publication record of a published version (to announce it again with another role)."""
        m = json.loads(self.store.get(model_repo.file_key(name, version, model_repo.MANIFEST_FILE)))
        w = m["files"][model_repo.WEIGHTS_FILE]
        return model_repo.PublishedVersion(
            name=name,
            version=version,
            prefix=model_repo.version_prefix(name, version),
            config_key=model_repo.config_key(name),
            weights_key=model_repo.file_key(name, version, model_repo.WEIGHTS_FILE),
            manifest_key=model_repo.file_key(name, version, model_repo.MANIFEST_FILE),
            sha256=w["sha256"],
            size_bytes=int(w["size"]),
            tasks=tuple(t["name"] for t in m["tasks"]),
            parent=m.get("parent"),
            manifest=m,
        )

    # -- runs --------------------------------------------------------------------------------------
    def save_run(self, run: T.Run) -> None:
        self.store.put_at(f"{RUNS}{run.run_id}.json", json_format.MessageToJson(run).encode(), "application/json")

    def load_runs(self) -> builtins.list[T.Run]:  # builtins: `list` is the method above
        out = []
        for key in self.store.list(RUNS):
            if key.endswith(".json"):
                try:
                    out.append(json_format.Parse(self.store.get(key), T.Run(), ignore_unknown_fields=True))
                except Exception:
                    continue
        return out
