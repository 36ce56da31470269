"""k-shot evaluation: the math on planted rewards, and the command on a real (tiny) model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from drift_local.drift.approx import DEFAULT_METHOD, Pairs
from drift_local.errors import DriftError
from drift_local.sessions.evaluate import METHODS, _prompt_split, evaluate


def planted(n=120, attributes=5, per_prompt=4, seed=0) -> dict[str, Pairs]:
    rng = np.random.default_rng(seed)
    direction = np.array([1.0, -0.5, 0.0, 0.0, 0.0])[:attributes]
    win, lose = rng.normal(size=(n, attributes)), rng.normal(size=(n, attributes))
    swap = (win - lose) @ direction < 0  # the planted user prefers the response scoring higher on `direction`
    win[swap], lose[swap] = lose[swap].copy(), win[swap].copy()
    tokens = np.full(n, 10.0)
    pairs = Pairs.of(win, lose, tokens, tokens, np.arange(n) // per_prompt)
    return {"sum": pairs, "mean": pairs}


@pytest.mark.parametrize("split", ["prompt", "random"])
def test_drift_recovers_a_planted_preference(split):
    result = evaluate(planted(), shots=[10, 40], seeds=5, split=split)
    assert set(result.scores) == set(METHODS) and METHODS[0] == DEFAULT_METHOD
    assert result.mean_std(DEFAULT_METHOD, 40)[0] > 0.85 and result.mean_std("paper", 40)[0] > 0.85
    assert result.mean_std("chance", 10) == (0.5, 0.0)
    assert result.mean_std("length only", 10)[0] == 0.5  # equal lengths carry no information
    assert result.beats_length(DEFAULT_METHOD, 40) == 5 == result.n_splits(40)
    assert all(len(v) == 5 for v in result.scores["logreg"].values())


def test_prompt_splits_never_share_a_prompt():
    groups = np.repeat(np.arange(12), 5)  # 12 prompts, 5 pairs each
    for seed in range(20):
        train, test = _prompt_split(groups, 20, np.random.default_rng(seed))
        assert len(train) == 20 and len(test) >= 5
        assert not set(groups[train]) & set(groups[test])
    # 40 pairs need 8 of the 12 prompts: more than half, while a quarter still tests.
    train, test = _prompt_split(groups, 40, np.random.default_rng(0))
    assert len(set(groups[train])) >= 8 and len(set(groups[test])) >= 3
    assert _prompt_split(groups, 50, np.random.default_rng(0)) is None  # would leave under a quarter to test


def test_shots_must_leave_a_test_set():
    with pytest.raises(DriftError, match="no shot count"):
        evaluate(planted(n=8), shots=[8, 20], seeds=2)
    assert evaluate(planted(n=8), shots=[4, 20], seeds=1).skipped_shots == [20]


def test_eval_command_on_a_tiny_model(tiny_gguf, tmp_path):
    data = tmp_path / "pairs.jsonl"
    rows = [{"prompt": f"q{i} sea", "chosen": "short." if i % 2 else "a longer answer about you.", "rejected": "the sea is a sea" * (1 + i % 3)} for i in range(12)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = subprocess.run(
        [sys.executable, "-m", "drift_local", "eval", "--data", str(data), "--slm", str(tiny_gguf), "--shots", "4,8", "--seeds", "3", "--split", "random", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n_pairs"] == 12 and report["shots"] == [4, 8] and report["split"] == "random"
    assert report["default_method"] == DEFAULT_METHOD and {"paper", "length only"} <= set(report["accuracy"])
    assert set(report["accuracy"]) == set(METHODS)
    for method in METHODS:
        for k in ("4", "8"):
            assert 0.0 <= report["accuracy"][method][k]["mean"] <= 1.0


def test_eval_refuses_impossible_shots_and_a_missing_plot_extra_before_scoring(cli, tmp_path, monkeypatch):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "b"}) + "\n" for i in range(6)))
    missing = str(tmp_path / "no-model.gguf")  # loading it would fail: the checks must come first
    result = cli("eval", "--data", str(data), "--slm", missing, "--shots", "10,20")
    assert result.code == 1 and "no shot count leaves pairs to test on (6 pairs" in result.err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the [plot] extra were not installed
    result = cli("eval", "--data", str(data), "--slm", missing, "--shots", "2", "--plot", str(tmp_path / "p.png"))
    assert result.code == 1 and "pip install 'drift-local[plot]'" in result.err  # brackets verbatim
