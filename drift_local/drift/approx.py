"""Drift Approximation: learn attribute weights p from a user's chosen/rejected pairs.

Paper, section 3.1 (Algorithm 1). Each response y gets one zero-shot reward per
attribute, r_i(y) = log π(y|x,s_i) − log π(y|x,s_0). Summing the reward
differences over pairs gives W − L, and the weights are

    p = argmax_{‖p‖₂ = 1} (W − L)ᵀ p = (W − L) / ‖W − L‖₂

(`fit_qp`). `fit_logreg` is the paper's comparison method (section 5), and the
length baseline is the trivial "prefers longer answers" model. Everything here
is pure numpy on already-scored rewards: no model, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift_local.errors import DriftError

# Below this fraction of the reward scale, W − L is rounding noise, not a preference.
_RELATIVE_TOLERANCE = 1e-12
_ADD_PAIRS_HINT = "add more pairs, ideally ones whose two responses differ clearly"


@dataclass(frozen=True)
class Fit:
    """Result of fitting attribute weights on preference pairs."""

    weights: np.ndarray  # unit-norm p, shape (A,)
    preference: np.ndarray  # mean (win − lose) per pair: the paper's "unit implicit preference"
    n_pairs: int
    method: str  # "qp" or "logreg"


def reward_matrix(
    logp_attr: np.ndarray,
    logp_base: np.ndarray,
    n_tokens: np.ndarray,
    mode: str = "sum",
) -> np.ndarray:
    """Zero-shot rewards r_i(y) = log π(y|x,s_i) − log π(y|x,s_0), shape (n, A).

    `logp_attr` (n, A) and `logp_base` (n,) are response log-probabilities summed
    over the response tokens. "sum" keeps them as in the paper; "mean" divides by
    the number of response tokens so long answers do not dominate (an empty
    response then gets reward 0).
    """
    attr = np.asarray(logp_attr, dtype=np.float64)
    base = np.asarray(logp_base, dtype=np.float64)
    tokens = np.asarray(n_tokens, dtype=np.float64)
    if attr.ndim != 2 or base.shape != (attr.shape[0],) or tokens.shape != base.shape:
        raise DriftError(
            f"reward shapes do not match: attributes {attr.shape}, base {base.shape}, "
            f"token counts {tokens.shape}"
        )
    rewards = attr - base[:, None]
    if mode == "sum":
        return rewards
    if mode == "mean":
        safe_tokens = np.where(tokens > 0, tokens, 1.0)
        return np.where(tokens[:, None] > 0, rewards / safe_tokens[:, None], 0.0)
    raise DriftError(f"unknown reward mode {mode!r}", hint="use 'sum' or 'mean'")


def fit_qp(win: np.ndarray, lose: np.ndarray) -> Fit:
    """The paper's closed form: p = (W − L) / ‖W − L‖₂."""
    win, lose = _checked_pairs(win, lose)
    total = (win - lose).sum(axis=0)
    weights = _unit_vector(total, _tolerance(win, lose))
    if weights is None:
        raise _no_direction_error()
    return Fit(weights, total / len(win), len(win), "qp")


def fit_logreg(win: np.ndarray, lose: np.ndarray, l2: float = 1.0, max_iter: int = 100) -> Fit:
    """Logistic regression with absolute labels (chosen = 1, rejected = 0).

    Features are the responses' reward vectors; there is an unpenalized
    intercept and an L2 penalty on the coefficients, which keeps the optimum
    finite on separable data. p = coef / ‖coef‖.
    """
    if not l2 > 0:
        raise DriftError("l2 must be > 0", hint="the penalty keeps separable data from diverging")
    win, lose = _checked_pairs(win, lose)
    tolerance = _tolerance(win, lose)
    # With Σwin = Σlose the optimum is exactly coef = 0 (the gradient vanishes
    # there and the objective is convex), so reuse the QP check for a clear error.
    if _unit_vector((win - lose).sum(axis=0), tolerance) is None:
        raise _no_direction_error()
    features = np.vstack([win, lose])
    labels = np.concatenate([np.ones(len(win)), np.zeros(len(lose))])
    coef = _logistic_newton(features, labels, l2, max_iter)
    weights = _unit_vector(coef, 0.0) if np.all(np.isfinite(coef)) else None
    if weights is None:
        raise _no_direction_error()
    return Fit(weights, (win - lose).mean(axis=0), len(win), "logreg")


def top_k(weights: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest |p_i|, largest first; ties keep the lower index first."""
    magnitudes = np.abs(np.asarray(weights, dtype=np.float64))
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    # A stable sort of −|p| keeps equal magnitudes in index order.
    return np.argsort(-magnitudes, kind="stable")[:k]


def pair_margins(weights: np.ndarray, win: np.ndarray, lose: np.ndarray) -> np.ndarray:
    """Reward margin p·(r_w − r_l) of each pair, shape (n,)."""
    diff = np.asarray(win, dtype=np.float64) - np.asarray(lose, dtype=np.float64)
    return diff @ np.asarray(weights, dtype=np.float64)


def accuracy(weights: np.ndarray, win: np.ndarray, lose: np.ndarray) -> float:
    """Fraction of pairs where the chosen response scores higher (a tie counts 0.5)."""
    return _margin_accuracy(pair_margins(weights, win, lose))


def fit_length_baseline(win_len: np.ndarray, lose_len: np.ndarray) -> float:
    """+1.0 if most training pairs chose the longer response, −1.0 if most chose
    the shorter, 0.0 when lengths carry no information (no pairs, all equal
    lengths, or as many "longer" as "shorter" choices)."""
    votes = np.sign(np.asarray(win_len, dtype=np.float64) - np.asarray(lose_len, dtype=np.float64))
    return float(np.sign(votes.sum()))


def length_accuracy(sign: float, win_len: np.ndarray, lose_len: np.ndarray) -> float:
    """Accuracy of predicting "the longer one wins" (sign +1) or "the shorter" (−1)."""
    diff = np.asarray(win_len, dtype=np.float64) - np.asarray(lose_len, dtype=np.float64)
    return _margin_accuracy(sign * diff)


def bootstrap_weights(
    win: np.ndarray, lose: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """QP weights refit on `n_boot` resamples of the pairs, shape (n_boot, A).

    The spread of each column estimates how uncertain p_i is (used to pick
    which pair to ask about next). A resample with no preference direction
    yields a zero row instead of raising: one unlucky resample is not an error.
    """
    if n_boot < 0:
        raise DriftError("n_boot must be >= 0")
    win, lose = _checked_pairs(win, lose)
    n = len(win)
    # Resampling with replacement = drawing how many times each pair is used.
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    totals = counts @ (win - lose)
    tolerance = _tolerance(win, lose)
    weights = np.zeros((n_boot, win.shape[1]))
    for row, total in enumerate(totals):
        unit = _unit_vector(total, tolerance)
        if unit is not None:
            weights[row] = unit
    return weights


def _checked_pairs(win: np.ndarray, lose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate reward matrices and return them as float64 (n, A)."""
    win = np.asarray(win, dtype=np.float64)
    lose = np.asarray(lose, dtype=np.float64)
    if win.ndim != 2 or win.shape != lose.shape:
        raise DriftError(
            "win and lose rewards must both be (pairs, attributes); "
            f"got {win.shape} and {lose.shape}"
        )
    if win.shape[0] == 0:
        raise DriftError("no preference pairs to fit", hint=_ADD_PAIRS_HINT)
    if win.shape[1] == 0:
        raise DriftError("no attributes to fit", hint="configure at least one attribute")
    if not (np.all(np.isfinite(win)) and np.all(np.isfinite(lose))):
        raise DriftError(
            "some rewards are NaN or infinite",
            hint="re-score the pairs; an empty response or a failed model call can cause this",
        )
    return win, lose


def _tolerance(win: np.ndarray, lose: np.ndarray) -> float:
    """Norm below which a W − L vector counts as zero, relative to the reward scale."""
    scale = max(1.0, float(np.abs(win).max()), float(np.abs(lose).max()))
    return _RELATIVE_TOLERANCE * scale


def _unit_vector(vector: np.ndarray, tolerance: float) -> np.ndarray | None:
    """vector / ‖vector‖, or None when ‖vector‖ ≤ tolerance."""
    largest = float(np.abs(vector).max())
    if largest == 0.0:
        return None
    # Dividing by the largest entry first keeps the norm from overflowing.
    scaled = vector / largest
    norm = float(np.linalg.norm(scaled))
    if largest * norm <= tolerance:
        return None
    return scaled / norm


def _no_direction_error() -> DriftError:
    return DriftError(
        "the chosen and rejected responses score the same on every attribute, "
        "so there is no preference direction to learn",
        hint=_ADD_PAIRS_HINT,
    )


def _margin_accuracy(margins: np.ndarray) -> float:
    """Mean of 1 for positive, 0.5 for zero and 0 for negative margins."""
    if margins.size == 0:
        raise DriftError("no pairs to evaluate", hint=_ADD_PAIRS_HINT)
    return float(np.mean(np.where(margins > 0, 1.0, np.where(margins == 0, 0.5, 0.0))))


def _logistic_newton(
    features: np.ndarray, labels: np.ndarray, l2: float, max_iter: int
) -> np.ndarray:
    """Minimize Σ logloss + (l2/2)‖coef‖² by damped Newton steps; returns coef.

    The intercept is the last parameter and is not penalized. Backtracking
    guarantees the objective never increases, so the iteration cannot blow up.
    """
    design = np.hstack([features, np.ones((len(features), 1))])
    penalty = np.full(design.shape[1], l2)
    penalty[-1] = 0.0
    params = np.zeros(design.shape[1])
    loss = _logistic_loss(design, labels, penalty, params)
    for _ in range(max_iter):
        probs = _sigmoid(design @ params)
        gradient = design.T @ (probs - labels) + penalty * params
        hessian = (design.T * (probs * (1.0 - probs))) @ design + np.diag(penalty)
        step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        params, new_loss = _backtrack(design, labels, penalty, params, step, loss)
        converged = loss - new_loss <= 1e-12 * max(1.0, abs(loss))
        loss = new_loss
        if converged:
            break
    return params[:-1]


def _backtrack(
    design: np.ndarray,
    labels: np.ndarray,
    penalty: np.ndarray,
    params: np.ndarray,
    step: np.ndarray,
    loss: float,
) -> tuple[np.ndarray, float]:
    """Halve the Newton step until the objective does not increase."""
    scale = 1.0
    for _ in range(30):
        candidate = params - scale * step
        candidate_loss = _logistic_loss(design, labels, penalty, candidate)
        if candidate_loss <= loss:
            return candidate, candidate_loss
        scale /= 2.0
    return params, loss


def _logistic_loss(
    design: np.ndarray, labels: np.ndarray, penalty: np.ndarray, params: np.ndarray
) -> float:
    logits = design @ params
    # log(1 + e^z) − y·z, written with logaddexp so large |z| cannot overflow.
    data_loss = np.sum(np.logaddexp(0.0, logits) - labels * logits)
    return float(data_loss + 0.5 * np.sum(penalty * params**2))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))
