"""Drift Approximation: learn attribute weights from a user's chosen/rejected pairs.

Paper, section 3.1 (Algorithm 1). Each response y gets one zero-shot reward per
attribute, r_i(y) = log π(y|x,s_i) − log π(y|x,s_0). Summing the reward differences
over pairs gives W − L, and the paper's weights are

    p = argmax_{‖p‖₂ = 1} (W − L)ᵀ p = (W − L) / ‖W − L‖₂          (`fit_paper`)

That closed form is the strong-regularization limit of a Bradley–Terry model on the
pairs' reward differences (its gradient at p = 0 is ∝ W − L). `fit_bt`, the default, is
that model with the strength chosen from the user's own pairs by cross-validation over
prompts, on rewards centered per response (minus their mean over attributes: the shift
any system prompt causes) and scaled per attribute, with the answer's length as one more
feature, and the answer's style read off its text (`drift.style`) as the rest. Its
weights are calibrated: p(y_w ≻ y_l) = σ(w·(r_w − r_l) + c·(n_w − n_l) + v·(s_w − s_l)),
in raw units, so decoding can use them as they are. `fit_logreg` is the paper's
section 5 comparison. Everything here is pure numpy on already-scored rewards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift_local.errors import DriftError

# Below this fraction of the reward scale, W − L is rounding noise, not a preference.
_RELATIVE_TOLERANCE = 1e-12
_ADD_PAIRS_HINT = "add more pairs, ideally ones whose two responses differ clearly"
# L2 strengths tried on standardized features, weakest first; the strongest is the
# fallback when there is nothing to cross-validate on.
REGULARIZATION_GRID = tuple(float(x) for x in np.logspace(-2, 3, 11))
LENGTH_PENALTY = 0.01  # length's L2 strength relative to the attributes': one well-measured feature
# The style features' L2 strength relative to the attributes', chosen by cross-validation
# with the rest: they are counted exactly, but there are several, and a taste may be absent.
STYLE_PENALTIES = (1.0, 0.1, 0.01)
LENGTH_UNIT = 100.0  # the length feature counts hundreds of tokens, so it is on the rewards' scale
MAX_FOLDS = 10  # cross-validation folds (groups of prompts)


@dataclass(frozen=True)
class Pairs:
    """Scored preference pairs: what every fit and evaluation works on."""

    win: np.ndarray  # (n, A) rewards of the chosen responses
    lose: np.ndarray  # (n, A)
    win_tokens: np.ndarray  # (n,) response lengths in tokens
    lose_tokens: np.ndarray
    groups: np.ndarray  # (n,) the prompt each pair answers: pairs of one prompt share answers
    win_style: np.ndarray  # (n, S) style rates of the chosen responses (`drift.style`); S may be 0
    lose_style: np.ndarray

    @classmethod
    def of(cls, win, lose, win_tokens=None, lose_tokens=None, groups=None, win_style=None, lose_style=None) -> "Pairs":
        win, lose = _checked_shapes(win, lose)
        n = len(win)
        tokens = lambda t: np.zeros(n) if t is None else np.asarray(t, dtype=np.float64).reshape(n)  # noqa: E731
        ids = np.arange(n) if groups is None else np.asarray(groups).reshape(n)
        style = lambda s: np.zeros((n, 0)) if s is None else np.asarray(s, dtype=np.float64).reshape(n, -1)  # noqa: E731
        win_style, lose_style = style(win_style), style(lose_style)
        if win_style.shape != lose_style.shape:
            raise DriftError(f"style shapes do not match: {win_style.shape} and {lose_style.shape}")
        return cls(win, lose, tokens(win_tokens), tokens(lose_tokens), ids, win_style, lose_style)

    def __len__(self) -> int:
        return len(self.win)

    def subset(self, index) -> "Pairs":
        return Pairs(
            self.win[index], self.lose[index], self.win_tokens[index], self.lose_tokens[index], self.groups[index],
            self.win_style[index], self.lose_style[index],
        )

    def swapped(self, flip: np.ndarray) -> "Pairs":
        """The same pairs with chosen and rejected exchanged where `flip` is true."""
        pick = lambda a, b: np.where(flip.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)  # noqa: E731
        return Pairs(
            pick(self.win, self.lose), pick(self.lose, self.win), pick(self.win_tokens, self.lose_tokens),
            pick(self.lose_tokens, self.win_tokens), self.groups, pick(self.win_style, self.lose_style),
            pick(self.lose_style, self.win_style),
        )

    def reward_gaps(self) -> np.ndarray:
        return self.win - self.lose

    def length_gaps(self) -> np.ndarray:
        return self.win_tokens - self.lose_tokens

    def style_gaps(self) -> np.ndarray:
        return self.win_style - self.lose_style

    def style_ceilings(self) -> np.ndarray:
        """(S,): each style rate's highest value among the answers, chosen or not: the range a
        reward linear in the rate was fitted on (decoding rewards a style only up to there)."""
        return np.vstack([self.win_style, self.lose_style]).max(axis=0, initial=0.0)


@dataclass(frozen=True)
class Fit:
    """Result of fitting attribute weights on preference pairs."""

    weights: np.ndarray  # (A,) on the raw reward scale: what decoding multiplies h_i − h_base by
    preference: np.ndarray  # mean (win − lose) per pair: the paper's "unit implicit preference"
    n_pairs: int
    method: str  # a key of FIT_METHODS
    length_weight: float = 0.0  # reward per token of answer length
    regularization: float | None = None  # the L2 strength chosen from the pairs
    style_weights: np.ndarray | None = None  # (S,) reward per unit of each style rate; None: style not used
    penalty: np.ndarray | None = None  # bt's relative L2 penalty per feature (inf: left out), for refits

    def margins(self, pairs: Pairs) -> np.ndarray:
        """Predicted reward gap of each pair, chosen minus rejected; > 0 means predicted right."""
        margins = pairs.reward_gaps() @ self.weights + self.length_weight * pairs.length_gaps()
        if self.style_weights is not None:
            margins = margins + pairs.style_gaps() @ self.style_weights
        return margins


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


def fit_paper(pairs: Pairs) -> Fit:
    """The paper's closed form: p = (W − L) / ‖W − L‖₂."""
    _check_fittable(pairs)
    total = pairs.reward_gaps().sum(axis=0)
    weights = _unit_vector(total, _tolerance(pairs))
    if weights is None:
        raise _no_direction_error()
    return Fit(weights, total / len(pairs), len(pairs), "paper")


def fit_bt(pairs: Pairs) -> Fit:
    """Regularized Bradley–Terry on centered, scaled rewards, length and style, strength from the pairs.

    The features of a pair are its reward gaps minus their mean over attributes, its
    length gap and its style gaps; each is divided by its root mean square over the pairs.
    The L2 strength, and whether length and style enter at all, are chosen by the held-out
    log-loss of leave-prompts-out cross-validation, so the fit only trusts the data as far
    as the data predicts new prompts. With too few prompts to cross-validate, the strongest
    regularization on the attributes alone is used: the direction of the closed form.
    """
    _check_fittable(pairs)
    if _unit_vector(pairs.reward_gaps().sum(axis=0), _tolerance(pairs)) is None:
        raise _no_direction_error()
    features, scale = _bt_features(pairs)
    options = _penalty_options(pairs)
    strength, penalty = _choose_regularization(features, pairs.groups, options)
    return _bt_fit(pairs, features, scale, strength, penalty)


def _bt_fit(pairs: Pairs, features: np.ndarray, scale: np.ndarray, strength: float, penalty: np.ndarray) -> Fit:
    coef = _bradley_terry(features, strength * penalty) / scale
    n_attributes = pairs.win.shape[1]
    attribute_coef = coef[:n_attributes]
    # w·(g − mean(g)) = (w − mean(w))·g: weights for the raw, uncentered reward gaps.
    weights = attribute_coef - attribute_coef.mean()
    length_weight = float(coef[n_attributes]) / LENGTH_UNIT
    uses_style = pairs.win_style.shape[1] > 0 and bool(np.all(np.isfinite(penalty[n_attributes + 1 :])))
    style_weights = coef[n_attributes + 1 :] if uses_style else None
    return Fit(weights, pairs.reward_gaps().mean(axis=0), len(pairs), "bt", length_weight, strength, style_weights, penalty)


def fit_logreg(pairs: Pairs, l2: float = 1.0, max_iter: int = 100) -> Fit:
    """Logistic regression with absolute labels (chosen = 1, rejected = 0).

    Features are the responses' reward vectors; there is an unpenalized
    intercept and an L2 penalty on the coefficients, which keeps the optimum
    finite on separable data. p = coef / ‖coef‖.
    """
    if not l2 > 0:
        raise DriftError("l2 must be > 0", hint="the penalty keeps separable data from diverging")
    _check_fittable(pairs)
    # With Σwin = Σlose the optimum is exactly coef = 0 (the gradient vanishes
    # there and the objective is convex), so reuse the QP check for a clear error.
    if _unit_vector(pairs.reward_gaps().sum(axis=0), _tolerance(pairs)) is None:
        raise _no_direction_error()
    features = np.vstack([pairs.win, pairs.lose])
    labels = np.concatenate([np.ones(len(pairs)), np.zeros(len(pairs))])
    coef = _logistic_newton(features, labels, l2, max_iter)
    weights = _unit_vector(coef, 0.0) if np.all(np.isfinite(coef)) else None
    if weights is None:
        raise _no_direction_error()
    return Fit(weights, pairs.reward_gaps().mean(axis=0), len(pairs), "logreg")


FIT_METHODS = {"bt": fit_bt, "paper": fit_paper, "logreg": fit_logreg}
DEFAULT_METHOD = "bt"
METHOD_HELP = {
    "bt": "regularized Bradley–Terry on centered, scaled rewards, length and style, strength chosen from your pairs (default)",
    "paper": "the paper's closed form p = (W−L)/‖W−L‖",
    "logreg": "logistic regression with absolute labels (the paper's section 5 comparison)",
}


def fit_pairs(pairs: Pairs, method: str = DEFAULT_METHOD) -> Fit:
    if method not in FIT_METHODS:
        raise DriftError(f"unknown fit method {method!r}", f"use one of: {', '.join(FIT_METHODS)}")
    return FIT_METHODS[method](pairs)


def top_k(weights: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest |p_i|, largest first; ties keep the lower index first."""
    magnitudes = np.abs(np.asarray(weights, dtype=np.float64))
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    # A stable sort of −|p| keeps equal magnitudes in index order.
    return np.argsort(-magnitudes, kind="stable")[:k]


def accuracy(fit: Fit, pairs: Pairs) -> float:
    """Fraction of pairs where the chosen response scores higher (a tie counts 0.5)."""
    return _margin_accuracy(fit.margins(pairs))


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


def bootstrap_weights(pairs: Pairs, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Closed-form weights refit on `n_boot` resamples of the pairs, shape (n_boot, A).

    The spread of each column estimates how uncertain p_i is (used to pick
    which pair to ask about next). A resample with no preference direction
    yields a zero row instead of raising: one unlucky resample is not an error.
    """
    if n_boot < 0:
        raise DriftError("n_boot must be >= 0")
    _check_fittable(pairs)
    n = len(pairs)
    # Resampling with replacement = drawing how many times each pair is used.
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot)
    totals = counts @ pairs.reward_gaps()
    tolerance = _tolerance(pairs)
    weights = np.zeros((n_boot, pairs.win.shape[1]))
    for row, total in enumerate(totals):
        unit = _unit_vector(total, tolerance)
        if unit is not None:
            weights[row] = unit
    return weights


def sign_stability(pairs: Pairs, fit: Fit, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Per attribute, the share of refits on resampled prompts whose weight has the fit's sign.

    Prompts, not pairs, are resampled (pairs of one prompt share answers), and each
    refit keeps the fit's own regularization, so only the data varies. Near 1: the sign
    is signal; near 0.5: noise.
    """
    prompts = np.unique(pairs.groups)
    agree = np.zeros(pairs.win.shape[1])
    done = 0
    for _ in range(n_boot):
        drawn = rng.choice(prompts, len(prompts), replace=True)
        index = np.concatenate([np.flatnonzero(pairs.groups == g) for g in drawn])
        try:
            refit = _refit(pairs.subset(index), fit)
        except DriftError:  # an unlucky resample with no direction counts as disagreeing
            done += 1
            continue
        agree += np.sign(refit.weights) == np.sign(fit.weights)
        done += 1
    return agree / max(done, 1)


def _refit(pairs: Pairs, fit: Fit) -> Fit:
    """The fit's own model (which features, what strength) on other pairs."""
    if fit.method != "bt" or fit.regularization is None or fit.penalty is None:
        return fit_pairs(pairs, fit.method)
    features, scale = _bt_features(pairs)
    return _bt_fit(pairs, features, scale, fit.regularization, fit.penalty)


def _bt_features(pairs: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """Centered reward gaps, the length gap and the style gaps, standardized; and each column's scale."""
    gaps = pairs.reward_gaps()
    gaps = gaps - gaps.mean(axis=1, keepdims=True)
    features = np.hstack([gaps, pairs.length_gaps()[:, None] / LENGTH_UNIT, pairs.style_gaps()])
    scale = np.sqrt(np.mean(features**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    return features / scale, scale


def _penalty(pairs: Pairs, uses_length: bool, style_penalty: float) -> np.ndarray:
    """Relative L2 penalties of the features; inf leaves a feature out."""
    n_attributes, n_style = pairs.win.shape[1], pairs.win_style.shape[1]
    return np.concatenate([np.ones(n_attributes), [LENGTH_PENALTY if uses_length else np.inf], np.full(n_style, style_penalty)])


def _penalty_options(pairs: Pairs) -> list[np.ndarray]:
    """The models cross-validation chooses from: attributes alone, with length, with length and style."""
    uses_length = bool(np.any(pairs.length_gaps()))
    options = [_penalty(pairs, False, np.inf)]
    if uses_length:
        options.append(_penalty(pairs, True, np.inf))
    if np.any(pairs.style_gaps()):
        options += [_penalty(pairs, uses_length, style) for style in STYLE_PENALTIES]
    return options


def _choose_regularization(features: np.ndarray, groups: np.ndarray, penalties: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """The (strength, penalty) with the lowest held-out log-loss over folds of prompts."""
    folds = _folds(groups)
    if len(folds) < 2:
        return REGULARIZATION_GRID[-1], penalties[0]
    best, best_loss = (REGULARIZATION_GRID[-1], penalties[0]), np.inf
    for penalty in penalties:
        for strength in REGULARIZATION_GRID:
            loss = 0.0
            for test in folds:
                coef = _bradley_terry(features[~test], strength * penalty)
                loss += float(np.logaddexp(0.0, -(features[test] @ coef)).sum())
            if loss < best_loss - 1e-9:
                best, best_loss = (strength, penalty), loss
    return best


def _folds(groups: np.ndarray) -> list[np.ndarray]:
    """Boolean test masks: whole prompts per fold, at most MAX_FOLDS folds."""
    prompts = np.unique(groups)
    fold_of = {g: i % MAX_FOLDS for i, g in enumerate(prompts)}
    labels = np.array([fold_of[g] for g in groups])
    return [labels == f for f in range(min(len(prompts), MAX_FOLDS))]


def _bradley_terry(features: np.ndarray, penalty: np.ndarray, max_iter: int = 50) -> np.ndarray:
    """argmin Σ log(1 + exp(−x·w)) + ½ Σ penalty_j w_j² by damped Newton; inf penalty pins w_j = 0."""
    active = np.isfinite(penalty)
    x, lam = features[:, active], penalty[active]
    coef = np.zeros(x.shape[1])

    def objective(w: np.ndarray) -> float:
        return float(np.logaddexp(0.0, -(x @ w)).sum() + 0.5 * np.sum(lam * w * w))

    value = objective(coef)
    for _ in range(max_iter):
        wrong = _sigmoid(-(x @ coef))  # probability the model gives the other order
        gradient = lam * coef - x.T @ wrong
        hessian = (x.T * (wrong * (1.0 - wrong))) @ x + np.diag(lam + 1e-10)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        for _ in range(30):
            candidate = coef - scale * step
            candidate_value = objective(candidate)
            if candidate_value <= value:
                break
            scale /= 2.0
        else:
            break
        converged = value - candidate_value <= 1e-10 * max(1.0, value)
        coef, value = candidate, candidate_value
        if converged:
            break
    out = np.zeros(features.shape[1])
    out[active] = coef
    return out


def _checked_shapes(win: np.ndarray, lose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    win = np.asarray(win, dtype=np.float64)
    lose = np.asarray(lose, dtype=np.float64)
    if win.ndim != 2 or win.shape != lose.shape:
        raise DriftError(
            "win and lose rewards must both be (pairs, attributes); "
            f"got {win.shape} and {lose.shape}"
        )
    return win, lose


def _check_fittable(pairs: Pairs) -> None:
    if len(pairs) == 0:
        raise DriftError("no preference pairs to fit", hint=_ADD_PAIRS_HINT)
    if pairs.win.shape[1] == 0:
        raise DriftError("no attributes to fit", hint="configure at least one attribute")
    if not (np.all(np.isfinite(pairs.win)) and np.all(np.isfinite(pairs.lose))):
        raise DriftError(
            "some rewards are NaN or infinite",
            hint="re-score the pairs; an empty response or a failed model call can cause this",
        )


def _tolerance(pairs: Pairs) -> float:
    """Norm below which a W − L vector counts as zero, relative to the reward scale."""
    scale = max(1.0, float(np.abs(pairs.win).max()), float(np.abs(pairs.lose).max()))
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
