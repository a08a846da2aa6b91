import shutil

from longtail_dev import protogen


def test_generated_code_is_in_sync_with_protos():
    problems = protogen.diff()
    assert not problems, "run `longtail protos generate`:\n" + "\n".join(problems)


def test_drift_is_detected(tmp_path, monkeypatch):
    """The sync check must be able to fail: edit a copy of the tree and it notices."""
    copy = tmp_path / "services"
    shutil.copytree(protogen.OUT / "longtail", copy / "longtail", ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "longtail" / "fleet" / "v1" / "fleet_pb2.py"
    target.write_text(target.read_text() + "\n# edited by hand\n")
    (copy / "longtail" / "ops" / "v1" / "leftover_pb2.py").write_text("")
    monkeypatch.setattr(protogen, "OUT", copy)
    problems = protogen.diff()
    assert "out of date: services/longtail/fleet/v1/fleet_pb2.py" in problems
    assert "stale (no .proto any more): services/longtail/ops/v1/leftover_pb2.py" in problems


def test_every_service_and_event_domain_exists():
    files = protogen.proto_files()
    for domain in ("common", "fleet", "triggers", "mapvision", "inference", "labels", "models", "ops"):
        assert any(f.startswith(f"longtail/{domain}/v1/") for f in files), domain
    for domain in ("fleet", "triggers", "mapvision", "inference", "labels", "models", "ops"):
        assert f"longtail/{domain}/v1/events.proto" in files
