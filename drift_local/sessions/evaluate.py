"""k-shot preference accuracy: train on k pairs, test on the rest, over several seeds.

Methods: Drift's closed form (QP) on summed and per-token rewards, logistic regression on
the same features (the paper's section 5 comparison), a length-only baseline fitted on the
training pairs, and chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from drift_local.drift.approx import accuracy, fit_length_baseline, fit_logreg, fit_qp, length_accuracy
from drift_local.errors import DriftError
from drift_local.sessions.rewards import PairRewards

METHODS = ("drift (sum)", "drift (mean)", "logreg (sum)", "length only", "chance")


@dataclass
class Evaluation:
    n_pairs: int
    shots: list[int]
    seeds: int
    scores: dict[str, dict[int, list[float]]] = field(default_factory=dict)  # method -> k -> accuracies
    skipped_shots: list[int] = field(default_factory=list)

    def mean_std(self, method: str, k: int) -> tuple[float, float]:
        values = np.array(self.scores[method][k])
        return float(values.mean()), float(values.std())


def _safe(train: Callable[[], float]) -> float:
    """A degenerate training sample (e.g. W−L = 0) predicts nothing: chance."""
    try:
        return train()
    except DriftError:
        return 0.5


def evaluate(rewards: dict[str, PairRewards], shots: Sequence[int], seeds: int) -> Evaluation:
    """`rewards` holds the same pairs under 'sum' and 'mean' reward modes."""
    total = len(rewards["sum"].win)
    usable = [k for k in shots if 0 < k < total]
    result = Evaluation(total, usable, seeds, {m: {k: [] for k in usable} for m in METHODS}, [k for k in shots if k not in usable])
    if not usable:
        raise DriftError(f"no shot count leaves pairs to test on ({total} pairs)", "use --shots smaller than the number of pairs")
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(total)
        for k in usable:
            train, test = order[:k], order[k:]
            for method, score in _scores(rewards, train, test).items():
                result.scores[method][k].append(score)
    return result


def _scores(rewards: dict[str, PairRewards], train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    s, m = rewards["sum"], rewards["mean"]
    length_sign = fit_length_baseline(s.win_tokens[train], s.lose_tokens[train])
    return {
        "drift (sum)": _safe(lambda: accuracy(fit_qp(s.win[train], s.lose[train]).weights, s.win[test], s.lose[test])),
        "drift (mean)": _safe(lambda: accuracy(fit_qp(m.win[train], m.lose[train]).weights, m.win[test], m.lose[test])),
        "logreg (sum)": _safe(lambda: accuracy(fit_logreg(s.win[train], s.lose[train]).weights, s.win[test], s.lose[test])),
        "length only": length_accuracy(length_sign, s.win_tokens[test], s.lose_tokens[test]),
        "chance": 0.5,
    }
