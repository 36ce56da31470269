"""k-shot evaluation: the math on planted rewards, and the command on a real (tiny) model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from drift_local.errors import DriftError
from drift_local.sessions.evaluate import METHODS, evaluate
from drift_local.sessions.rewards import PairRewards


def planted(n=60, attributes=5, seed=0) -> dict[str, PairRewards]:
    rng = np.random.default_rng(seed)
    direction = np.array([1.0, -0.5, 0.0, 0.0, 0.0])[:attributes]
    win, lose = rng.normal(size=(n, attributes)), rng.normal(size=(n, attributes))
    swap = (win - lose) @ direction < 0  # the planted user prefers the response scoring higher on `direction`
    win[swap], lose[swap] = lose[swap].copy(), win[swap].copy()
    tokens = np.full(n, 10.0)
    r = PairRewards(win, lose, tokens, tokens)
    return {"sum": r, "mean": r}


def test_drift_recovers_a_planted_preference():
    result = evaluate(planted(), shots=[10, 40], seeds=5)
    assert set(result.scores) == set(METHODS)
    assert result.mean_std("drift (sum)", 40)[0] > 0.85
    assert result.mean_std("chance", 10) == (0.5, 0.0)
    assert result.mean_std("length only", 10)[0] == 0.5  # equal lengths carry no information
    assert all(len(v) == 5 for v in result.scores["logreg (sum)"].values())


def test_shots_must_leave_a_test_set():
    with pytest.raises(DriftError, match="no shot count"):
        evaluate(planted(n=8), shots=[8, 20], seeds=2)
    assert evaluate(planted(n=8), shots=[4, 20], seeds=1).skipped_shots == [20]


def test_eval_command_on_a_tiny_model(tiny_gguf, tmp_path):
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"q{i} sea", "chosen": "short." if i % 2 else "a longer answer about you.", "rejected": "the sea is a sea" * (1 + i % 3)} for i in range(12)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = subprocess.run(
        [sys.executable, "-m", "drift_local", "eval", "--data", str(data), "--slm", str(tiny_gguf), "--shots", "4,8", "--seeds", "3", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_pairs"] == 12 and report["shots"] == [4, 8]
    assert set(report["accuracy"]) == set(METHODS)
    for method in METHODS:
        for k in ("4", "8"):
            assert 0.0 <= report["accuracy"][method][k]["mean"] <= 1.0
