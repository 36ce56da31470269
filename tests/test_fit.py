"""Drift Approximation end to end on a real (tiny) model: caching, refits, crashes."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from drift_local.config import store_path
from drift_local.engine.context import ContextSettings
from drift_local.engine.model import load_model
from drift_local.errors import DriftError
from drift_local.store.store import Pair, Store
from drift_local.sessions.fit import fit_profile, profile_steering, steering_from_fit

SETTINGS = ContextSettings(n_ctx=512)


def pairs(n: int) -> list[Pair]:
    return [Pair(f"question {i} about the sea", f"a short answer {i}.", f"a much longer answer number {i} about the sea and you.") for i in range(n)]


def test_fit_scores_once_then_refits_from_cache(tiny_gguf):
    model = load_model(tiny_gguf)
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, pairs(3))
        first = fit_profile(store, profile, model, SETTINGS)
        assert first.scored_tokens > 0
        assert first.record.method == "bt" and np.all(np.isfinite(first.fit.weights))
        assert len(first.record.names) == 41 == len(first.record.sign_stability)
        again = fit_profile(store, profile, model, SETTINGS)
        assert again.scored_tokens == 0
        np.testing.assert_allclose(again.fit.weights, first.fit.weights)
        store.add_pairs(profile, pairs(4)[3:])
        third = fit_profile(store, profile, model, SETTINGS)
        assert 0 < third.scored_tokens < first.scored_tokens  # only the new pair
        assert len(store.fit_history(profile)) == 3


def test_fit_method_paper_is_the_papers_closed_form_on_the_cached_scores(tiny_gguf):
    """p = (W − L)/‖W − L‖, with W − L summed here from the raw cached log-probabilities."""
    model = load_model(tiny_gguf)
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, pairs(4))
        record = fit_profile(store, profile, model, SETTINGS, method="paper").record
        attributes = store.active_attributes(profile)
        stored = store.list_pairs(profile)
        keys = [(s, p.prompt, r) for p in stored for s in (attributes.base, *attributes.prompts) for r in (p.chosen, p.rejected)]
        logp = {key: value[0] for key, value in store.get_logprobs(model.fingerprint, 0, keys).items()}
    w_minus_l = np.array([
        sum(
            (logp[(s, p.prompt, p.chosen)] - logp[(attributes.base, p.prompt, p.chosen)])
            - (logp[(s, p.prompt, p.rejected)] - logp[(attributes.base, p.prompt, p.rejected)])
            for p in stored
        )
        for s in attributes.prompts
    ])
    assert record.method == "paper"
    np.testing.assert_allclose(record.weights, w_minus_l / np.linalg.norm(w_minus_l), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(record.preference, w_minus_l / len(stored), rtol=1e-9, atol=1e-12)


def test_custom_attribute_and_mean_rewards(tiny_gguf):
    model = load_model(tiny_gguf)
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, pairs(2))
        store.add_attribute(profile, "pirate", "You are a pirate AI assistant.")
        outcome = fit_profile(store, profile, model, SETTINGS, reward="mean", method="logreg")
        assert "pirate" in outcome.record.names and outcome.record.reward == "mean"
        steering, notice = profile_steering(store, profile, model, SETTINGS, 7, reward="mean")
        assert notice is None and steering.k == 7


def test_empty_and_degenerate_profiles(tiny_gguf):
    model = load_model(tiny_gguf)
    with Store.open() as store:
        profile = store.create_profile("me")
        with pytest.raises(DriftError, match="no preference pairs"):
            fit_profile(store, profile, model, SETTINGS)
        steering, notice = profile_steering(store, profile, model, SETTINGS, 7)
        assert steering is None and "plain decoding" in notice
        store.add_pairs(profile, [Pair("q", "same answer", "same answer")])  # W - L = 0
        with pytest.raises(DriftError, match="pairs"):
            fit_profile(store, profile, model, SETTINGS)


def _cli(*args):
    return [sys.executable, "-m", "drift_local", *args]


def _wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _cached_rows() -> int:
    with sqlite3.connect(store_path()) as db:
        return db.execute("SELECT COUNT(*) FROM logprob_cache").fetchone()[0]


def test_kill_during_fit_keeps_pairs_and_finished_scores(tiny_gguf, tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n" for p in pairs(60)))
    assert subprocess.run(_cli("profile", "import", "me", str(data)), capture_output=True).returncode == 0
    fit = subprocess.Popen(_cli("fit", "--profile", "me", "--slm", str(tiny_gguf)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: store_path().exists() and _cached_rows() > 0), "fit never committed a chunk"
        fit.send_signal(signal.SIGKILL)
        fit.wait()
    finally:
        fit.kill()
    with sqlite3.connect(store_path()) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store.open() as store:
        assert store.count_pairs(store.get_profile("me")) == 60
    kept = _cached_rows()
    assert 0 < kept and kept % 2 == 0  # whole chunks: both responses of each (prompt, system)
    rerun = subprocess.run(_cli("fit", "--profile", "me", "--slm", str(tiny_gguf), "--json"), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["n_pairs"] == 60


def test_kill_during_import_is_all_or_nothing(tmp_path):
    data = tmp_path / "big.jsonl"
    line = json.dumps({"prompt": "q" * 200, "chosen": "c" * 400, "rejected": "r" * 400}) + "\n"
    with data.open("w") as f:
        for i in range(60000):
            f.write(line.replace('"q', f'"{i}', 1))
    subprocess.run(_cli("profile", "create", "me"), check=True, capture_output=True)
    importer = subprocess.Popen(_cli("profile", "import", "me", str(data)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    importer.send_signal(signal.SIGKILL)
    importer.wait()
    with Store.open() as store:
        assert store.count_pairs(store.get_profile("me")) in (0, 60000)


def test_changed_attributes_make_a_fit_stale(tiny_gguf):
    model = load_model(tiny_gguf)
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, pairs(2))
        profile_steering(store, profile, model, SETTINGS, 41)
        store.add_attribute(profile, "pirate", "You are a pirate AI assistant.")
        steering, _ = profile_steering(store, profile, model, SETTINGS, 42)
        assert "pirate" in steering.names  # refit with the new attribute, not the old fit reused
        assert len(store.fit_history(profile)) == 2


def test_unit_weight_scale_is_the_papers_unit_vector_and_keeps_the_length_taste(tiny_gguf):
    model = load_model(tiny_gguf)
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, pairs(4))
        record = fit_profile(store, profile, model, SETTINGS).record
        fitted = steering_from_fit(record, store, profile, 5, "fitted")
        unit = steering_from_fit(record, store, profile, 5, "unit")
    weights = np.asarray(record.weights)
    assert fitted.names == unit.names and len(unit.names) == 5
    index = [record.names.index(n) for n in unit.names]
    np.testing.assert_allclose(fitted.weights, weights[index])
    np.testing.assert_allclose(unit.weights, weights[index] / np.linalg.norm(weights))
    assert unit.end_bias == fitted.end_bias
