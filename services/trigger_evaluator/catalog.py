"""The trigger catalog: validation, versioning and state transitions.

The source of truth is the compacted topic triggers.catalog.v1 (key = trigger_id, value = the
trigger's latest version and state). Every replica rebuilds this in-memory view from it on
start; writes go to the topic first (acked) and then into the view, so a caller reads its own
write and every gateway replica learns of it within a second.
"""

from __future__ import annotations

import re
import time

from google.protobuf.timestamp_pb2 import Timestamp

from longtail.triggerlang import FiringOptions, TriggerSyntaxError, compile_trigger
from longtail.triggers.v1 import triggers_pb2

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
S = triggers_pb2


class CatalogError(Exception):
    """A request the catalog refuses; `code` is the gRPC status name to answer with."""

    def __init__(self, code: str, message: str, errors: list[S.ValidationError] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.errors = errors or []


def slugify(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return slug


def validate_spec(spec: S.TriggerSpec) -> tuple[list[S.ValidationError], list[str]]:
    """Every problem in a spec (expression errors with line/column/caret), and its detectors."""
    errors: list[S.ValidationError] = []
    detectors: list[str] = []
    try:
        options = FiringOptions.from_spec(spec)
        compiled = compile_trigger(spec.expression, options)
        detectors = sorted(compiled.required_detectors)
    except TriggerSyntaxError as exc:
        errors.append(S.ValidationError(line=exc.line, column=exc.column, message=exc.message, snippet=exc.snippet, field="expression"))
    except ValueError as exc:  # firing options out of bounds
        errors.append(S.ValidationError(message=str(exc), field="capture_window"))

    def bad(field: str, message: str) -> None:
        errors.append(S.ValidationError(message=message, field=field))

    if not spec.name.strip():
        bad("name", "is empty")
    if spec.site == S.TRIGGER_SITE_UNSPECIFIED:
        bad("site", "choose EDGE, FLEET or BOTH")
    if not spec.task.strip():
        bad("task", "name the task whose label queue receives the uploads")
    if spec.upload_budget <= 0:
        bad("upload_budget", "must be > 0")
    if not spec.max_uploads_per_car_hour > 0:
        bad("max_uploads_per_car_hour", "must be > 0")
    if spec.min_interval.seconds < 0 or spec.min_interval.nanos < 0:
        bad("min_interval", "must be >= 0")
    if not 0.0 <= spec.yield_floor <= 1.0:
        bad("yield_floor", "must be within [0, 1]")
    if spec.HasField("starts_at") and spec.HasField("expires_at") and spec.expires_at.ToNanoseconds() <= spec.starts_at.ToNanoseconds():
        bad("expires_at", "must be after starts_at")
    return errors, detectors


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


class Catalog:
    def __init__(self) -> None:
        self.latest: dict[str, S.Trigger] = {}
        self.versions: dict[tuple[str, int], S.Trigger] = {}  # history seen since start

    # -- the view ------------------------------------------------------------------------------
    def apply(self, trigger_id: str | None, trigger: S.Trigger | None) -> None:
        """Fold one catalog record (None = tombstone) into the view; stale replays are ignored."""
        if trigger is None:
            if trigger_id:
                self.latest.pop(trigger_id, None)
            return
        current = self.latest.get(trigger.trigger_id)
        if current is not None and (current.version, current.updated_at.ToNanoseconds()) > (trigger.version, trigger.updated_at.ToNanoseconds()):
            return
        stored = S.Trigger()
        stored.CopyFrom(trigger)
        self.latest[trigger.trigger_id] = stored
        self.versions[(trigger.trigger_id, trigger.version)] = stored

    def get(self, trigger_id: str, version: int = 0) -> S.Trigger:
        trigger = self.latest.get(trigger_id)
        if trigger is None:
            raise CatalogError("NOT_FOUND", f"no trigger {trigger_id!r}")
        if version and version != trigger.version:
            old = self.versions.get((trigger_id, version))
            if old is None:
                raise CatalogError("NOT_FOUND", f"{trigger_id!r} has no version {version} in this replica's history (latest is {trigger.version})")
            return old
        return trigger

    def list(self, states: list[int] | None = None) -> list[S.Trigger]:
        return sorted((t for t in self.latest.values() if not states or t.state in states), key=lambda t: t.trigger_id)

    # -- changes (each returns the record to write) ----------------------------------------------
    def create(self, trigger_id: str, spec: S.TriggerSpec, operator: str) -> tuple[S.Trigger, bool]:
        trigger_id = trigger_id or slugify(spec.name)
        if not SLUG.match(trigger_id):
            raise CatalogError("INVALID_ARGUMENT", f"trigger_id {trigger_id!r} must match [a-z0-9-]{{1,64}} (no leading/trailing hyphen)")
        errors, _ = validate_spec(spec)
        if errors:
            raise CatalogError("INVALID_ARGUMENT", "; ".join(f"{e.field}: {e.message}" + (f" (line {e.line}, column {e.column})" if e.line else "") for e in errors), errors)
        existing = self.latest.get(trigger_id)
        if existing is not None:
            if existing.spec == spec:
                return existing, True  # an idempotent retry
            raise CatalogError("ALREADY_EXISTS", f"trigger {trigger_id!r} exists with a different spec; use UpdateTrigger")
        now = _now()
        trigger = S.Trigger(trigger_id=trigger_id, version=1, spec=spec, state=S.TRIGGER_STATE_DRAFT, state_reason="created", created_by=operator, created_at=now, updated_at=now)
        return trigger, False

    def update(self, trigger_id: str, spec: S.TriggerSpec, expected_version: int, operator: str) -> S.Trigger:
        current = self.get(trigger_id)
        if expected_version and expected_version != current.version:
            raise CatalogError("FAILED_PRECONDITION", f"latest version is {current.version}, not {expected_version}")
        if current.state in (S.TRIGGER_STATE_RETIRED,):
            raise CatalogError("FAILED_PRECONDITION", f"{trigger_id!r} is retired")
        errors, _ = validate_spec(spec)
        if errors:
            raise CatalogError("INVALID_ARGUMENT", "; ".join(f"{e.field}: {e.message}" for e in errors), errors)
        if spec == current.spec:
            return current
        now = _now()
        state = S.TRIGGER_STATE_DRAFT if current.state == S.TRIGGER_STATE_EXHAUSTED else current.state
        return S.Trigger(trigger_id=trigger_id, version=current.version + 1, spec=spec, state=state, state_reason=f"spec changed by {operator}", created_by=operator, created_at=now, updated_at=now)

    def transition(self, trigger_id: str, to: S.TriggerState, reason: str, operator: str, expected_version: int = 0) -> S.Trigger:
        current = self.get(trigger_id)
        if expected_version and expected_version != current.version:
            raise CatalogError("FAILED_PRECONDITION", f"latest version is {current.version}, not {expected_version}")
        allowed = {
            S.TRIGGER_STATE_ACTIVE: (S.TRIGGER_STATE_DRAFT, S.TRIGGER_STATE_PAUSED, S.TRIGGER_STATE_ACTIVE),
            S.TRIGGER_STATE_PAUSED: (S.TRIGGER_STATE_ACTIVE, S.TRIGGER_STATE_PAUSED),
            S.TRIGGER_STATE_RETIRED: (S.TRIGGER_STATE_DRAFT, S.TRIGGER_STATE_ACTIVE, S.TRIGGER_STATE_PAUSED, S.TRIGGER_STATE_EXHAUSTED, S.TRIGGER_STATE_RETIRED),
            S.TRIGGER_STATE_EXHAUSTED: (S.TRIGGER_STATE_ACTIVE,),
        }[to]
        if current.state not in allowed:
            raise CatalogError("FAILED_PRECONDITION", f"{trigger_id!r} is {S.TriggerState.Name(current.state)}; it cannot become {S.TriggerState.Name(to)}")
        if current.state == to:
            return current
        if to == S.TRIGGER_STATE_ACTIVE and current.spec.HasField("expires_at") and current.spec.expires_at.ToSeconds() <= time.time():
            raise CatalogError("FAILED_PRECONDITION", f"{trigger_id!r} expired at {current.spec.expires_at.ToJsonString()}")
        trigger = S.Trigger()
        trigger.CopyFrom(current)
        trigger.state = to
        trigger.state_reason = reason or f"{S.TriggerState.Name(to).removeprefix('TRIGGER_STATE_').lower()} by {operator}"
        trigger.updated_at.CopyFrom(_now())
        return trigger
