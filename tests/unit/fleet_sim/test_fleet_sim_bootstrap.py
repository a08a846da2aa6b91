"""Bootstrap model plumbing: seeded training and the on-disk cache (tiny runs only; the real
bootstrap takes about a minute)."""

from __future__ import annotations

from longtail.model import torchscript
from longtail.synthetic.world import WorldConfig

from fleet_sim import bootstrap as B


def test_tiny_bootstrap_is_seeded_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LONGTAIL_MODEL_CACHE", str(tmp_path))
    a = B.train_bootstrap_model(seed=5, samples=48, epochs=1)
    files = list(tmp_path.glob("bootstrap-5-*.pt"))
    assert len(files) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model should have been loaded, not trained again")

    with monkeypatch.context() as m:
        m.setattr(B, "train_on_world", no_training)
        again = B.train_bootstrap_model(seed=5, samples=48, epochs=1)
    assert torchscript.state_dict_sha256(again) == torchscript.state_dict_sha256(a)
    fresh = B.train_bootstrap_model(seed=5, samples=48, epochs=1, use_cache=False)
    assert torchscript.state_dict_sha256(fresh) == torchscript.state_dict_sha256(a)  # reproducible from the seed
    other = B.train_bootstrap_model(seed=6, samples=48, epochs=1)
    assert torchscript.state_dict_sha256(other) != torchscript.state_dict_sha256(a)
    assert len(list(tmp_path.glob("bootstrap-*.pt"))) == 2
    metrics = B.evaluate_on(a, WorldConfig().common_only(), samples=8, negatives=8)
    assert 0.0 <= metrics["stop_sign/recall"] <= 1.0 and "stop_sign/false_positive_rate" in metrics


def test_cache_key_depends_on_training_parameters():
    p1 = B.bootstrap_cache_path(0, {"samples": 10})
    p2 = B.bootstrap_cache_path(0, {"samples": 11})
    p3 = B.bootstrap_cache_path(1, {"samples": 10})
    assert p1 != p2 and p1.name.startswith("bootstrap-0-") and p3.name.startswith("bootstrap-1-")


def test_the_model_cache_follows_the_scripts_cache_dir(monkeypatch, tmp_path):
    from fleet_sim.bootstrap import cache_dir

    monkeypatch.delenv("LONGTAIL_MODEL_CACHE", raising=False)
    monkeypatch.setenv("LONGTAIL_CACHE_DIR", str(tmp_path / "cache"))
    assert cache_dir() == tmp_path / "cache" / "models"
    monkeypatch.setenv("LONGTAIL_MODEL_CACHE", str(tmp_path / "m"))
    assert cache_dir() == tmp_path / "m"
