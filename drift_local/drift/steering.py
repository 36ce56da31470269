"""Drift Decoding's logit combination, kept close to what the LLM finds plausible.

Paper, section 3.2 (Eq. 15): with logits h^LLM from the model being steered, h^i from
the small model under attribute prompt s_i and h^base under the base prompt s_0,

    h^drift = h^LLM + (1/β) Σ_i p_i (h^i − h^base).

Left alone, the steering term can lift tokens the LLM would never write (a small model's
logit ratios are largest in its unreliable tail), and the text turns to junk. Two guards,
both measured in `benchmarks/steering_effect.py`:

- plausibility α (contrastive decoding's adaptive constraint, Li et al. 2023): only tokens
  with p_LLM ≥ α · max p_LLM can be chosen; steering reorders those, it never reaches
  outside them.
- a KL budget: the steering term is scaled down (never up) until the steered
  distribution is within `kl_budget` nats of the LLM's own (over the plausible tokens).
  β is the paper's KL weight; the budget bounds what one token may spend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from drift_local.errors import DriftError

_BISECTION_STEPS = 24
# With the plausibility constraint on, a style the profile rewards but the answer does not
# hold yet (its first "!", "?" or list item) may still be chosen where the LLM gives it at
# least this share of its top token's probability: such tokens are rarely within α of the
# top one, though an answer can always end a sentence with "!" instead of ".".
REACH_PLAUSIBILITY = 0.005
# The end of the answer may be chosen down to this share right after a finished sentence
# (`drift.style.ends_sentence`), and nowhere else below α: an answer that stops early stops
# after a sentence, never inside one. Measured on SmolLM2's plain answers: after a finished
# sentence, ending is at e^-8 to e^-0.2 of the top token. At 1e-4 on the dev prompts a
# fewer-words profile stopped after the first sentence (29 tokens against 232).
END_PLAUSIBILITY = REACH_PLAUSIBILITY


def steering_term(h_attr: np.ndarray, h_base: np.ndarray, weights: np.ndarray, beta: float) -> np.ndarray:
    """(1/β) Σ_i p_i (h_attr[i] − h_base), as float32 of shape (V,)."""
    scaled = np.asarray(weights, dtype=np.float64) / beta
    h_attr = np.asarray(h_attr, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        # Σ w_i (h_i − h_base) = w @ h_attr − (Σ w_i) h_base: one matrix-vector product, no (k, V) temporary.
        term = scaled.astype(np.float32) @ h_attr
        term -= np.float32(scaled.sum()) * np.asarray(h_base, dtype=np.float32)
    if not np.all(np.isfinite(term)):
        raise DriftError(f"beta {beta:g} is too small: the steered logits overflow", "use a beta of 0.05 or more")
    return term


@dataclass(frozen=True)
class Decoding:
    """How strongly to steer (β) and how far from the LLM a step may go (α, KL budget)."""

    beta: float = 1.0  # the paper's KL weight: smaller steers harder, inf is plain decoding
    plausibility: float = 0.0  # α; 0 turns the constraint off
    kl_budget: float = math.inf  # nats per token; inf turns it off

    def __post_init__(self) -> None:
        if not self.beta > 0:  # also rejects NaN
            raise DriftError(f"beta must be > 0, got {self.beta}", "larger beta means weaker personalization; inf is plain decoding")
        if not 0.0 <= self.plausibility < 1.0:
            raise DriftError(f"plausibility must be in [0, 1), got {self.plausibility}", "0 turns the constraint off; 0.1 is typical")
        if not self.kl_budget > 0:
            raise DriftError(f"the KL budget must be > 0 nats, got {self.kl_budget}", "inf turns it off")

    @property
    def steers(self) -> bool:
        return math.isfinite(self.beta)


def drift_logits(
    h_llm: np.ndarray,
    h_attr: np.ndarray,
    h_base: np.ndarray,
    weights: np.ndarray,
    decoding: Decoding,
    end_bias: float = 0.0,
    end_ids: tuple[int, ...] = (),
    token_bias: np.ndarray | None = None,
    reach: np.ndarray | None = None,
    sentence_end: bool = False,
) -> np.ndarray:
    """The steered logits, float32 of shape (V,); implausible tokens are −inf.

    `end_bias` is a reward for ending the answer now (a taste for shorter answers, > 0, or
    longer ones, < 0); it is added, divided by β like the rest, to the `end_ids` tokens.
    `token_bias` (V,) is a reward for writing each token (the style taste, `drift.style`),
    also divided by β. `reach` (ids) may be chosen down to REACH_PLAUSIBILITY, and, when the
    text so far ends a sentence (`sentence_end`), the end tokens down to END_PLAUSIBILITY.
    With β = inf, or nothing to add, this is an exact copy of h_llm (no token masked), so
    greedy Drift decoding then matches plain decoding token for token.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(weights)):
        raise DriftError("attribute weights contain NaN or infinite values", hint="refit the profile")
    steered = np.array(h_llm, dtype=np.float32, copy=True)
    has_bias = token_bias is not None and bool(np.any(token_bias))
    if not decoding.steers or not (np.any(weights) or (end_bias and end_ids) or has_bias):
        return steered
    h_attr = np.asarray(h_attr, dtype=np.float32)
    shapes_match = steered.ndim == 1 and np.shape(h_base) == steered.shape
    if not shapes_match or h_attr.shape != (weights.size, steered.size):
        raise DriftError(
            f"logit shapes do not match: llm {steered.shape}, attributes {h_attr.shape}, "
            f"base {np.shape(h_base)}, weights {weights.shape}"
        )
    term = steering_term(h_attr, h_base, weights, decoding.beta)
    if end_bias and end_ids:
        term[list(end_ids)] += np.float32(end_bias / decoding.beta)
    if has_bias:
        if np.shape(token_bias) != steered.shape:
            raise DriftError(f"token bias shape {np.shape(token_bias)} does not match the logits {steered.shape}")
        term += np.asarray(token_bias, dtype=np.float32) / np.float32(decoding.beta)
    if not np.all(np.isfinite(term)):  # an imported fit's length or style weight can be absurd
        raise DriftError("the profile's length or style weights overflow the logits", "refit the profile: drift-local fit --profile NAME")
    within_reach = [] if reach is None else [(reach, REACH_PLAUSIBILITY)]
    if sentence_end:
        within_reach.append((np.asarray(end_ids, np.int64), END_PLAUSIBILITY))
    keep = plausible(steered, decoding.plausibility, within_reach)
    if keep is None:
        steered += np.float32(kl_scale(steered, term, decoding.kl_budget)) * term
        return steered
    scale = kl_scale(steered[keep], term[keep], decoding.kl_budget)
    out = np.full_like(steered, -np.inf)
    out[keep] = steered[keep] + np.float32(scale) * term[keep]
    return out


def plausible(h_llm: np.ndarray, alpha: float, reach: Sequence[tuple[np.ndarray, float]] = ()) -> np.ndarray | None:
    """Ids of tokens with p_LLM ≥ α · max p_LLM, and of each `reach` group's tokens with
    p_LLM ≥ its floor · max p_LLM; None when α = 0 (every token)."""
    if alpha <= 0:
        return None
    peak = h_llm.max()
    keep = h_llm >= peak + np.float32(math.log(alpha))
    for ids, floor in reach:
        ids = np.asarray(ids, dtype=np.int64)
        keep[ids] |= h_llm[ids] >= peak + np.float32(math.log(min(alpha, floor)))
    return np.flatnonzero(keep)


def kl_scale(h_llm: np.ndarray, term: np.ndarray, budget: float) -> float:
    """The largest s in [0, 1] with KL(softmax(h_llm + s·term) ‖ softmax(h_llm)) ≤ budget.

    The KL grows monotonically with s (its derivative is s · Var(term) under the steered
    distribution), so bisection finds it.
    """
    if math.isinf(budget):
        return 1.0
    base = _log_softmax(np.asarray(h_llm, dtype=np.float64))
    term = np.asarray(term, dtype=np.float64)
    if _kl(base, term, 1.0) <= budget:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if _kl(base, term, middle) <= budget:
            low = middle
        else:
            high = middle
    return low


def kl_divergence(h_llm: np.ndarray, term: np.ndarray, scale: float = 1.0) -> float:
    """KL(softmax(h_llm + scale·term) ‖ softmax(h_llm)) in nats."""
    base = _log_softmax(np.asarray(h_llm, dtype=np.float64))
    return _kl(base, np.asarray(term, dtype=np.float64), scale)


def _kl(base_log_probs: np.ndarray, term: np.ndarray, scale: float) -> float:
    steered = _log_softmax(base_log_probs + scale * term)
    return float(np.sum(np.exp(steered) * (steered - base_log_probs)))


def _log_softmax(values: np.ndarray) -> np.ndarray:
    peak = values.max()
    return values - (peak + math.log(float(np.exp(values - peak).sum())))
