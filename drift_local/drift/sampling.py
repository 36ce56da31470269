"""Sampling: turn a (steered) logit vector into a token id.

The usual llama.cpp-style controls (repetition penalty, temperature, top-k, top-p,
min-p). Written for Llama-3-sized vocabularies (128k): it never sorts the whole
vocabulary unless the nucleus is unusually wide.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drift_local.errors import DriftError

# Nucleus candidates taken by partial sort; only when they hold less than
# top_p of the probability mass does the sampler sort the whole vocabulary.
_NUCLEUS_CANDIDATES = 1024
# Repeats longer than this are counted as this long (DRY's penalty is prohibitive by then).
_MAX_REPEAT = 64
# Block length for searching running sums (see _search_running_sum).
_SEARCH_BLOCK = 2048


@dataclass
class SamplerSettings:
    """Sampling controls; the 'off' value of each filter is noted beside it."""

    temperature: float = 1.0  # 0 means greedy
    top_k: int = 0  # 0: off
    top_p: float = 0.9  # 1.0: off
    min_p: float = 0.0  # 0.0: off
    repeat_penalty: float = 1.0  # 1.0: off
    repeat_last_n: int = 64
    no_repeat_ngram: int = 0  # n: never write an n-gram the answer already holds; 0: off
    dry_multiplier: float = 0.0  # DRY repetition penalty's strength; 0: off
    dry_base: float = 1.75  # DRY: the penalty grows by this factor per repeated token
    dry_allowed_length: int = 2  # DRY: repeats up to this many tokens go unpunished
    greedy: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise DriftError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise DriftError(f"top_k must be >= 0 (0 turns it off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise DriftError(f"top_p must be in (0, 1] (1 turns it off), got {self.top_p}")
        if not 0 <= self.min_p < 1:
            raise DriftError(f"min_p must be in [0, 1) (0 turns it off), got {self.min_p}")
        if not (self.repeat_penalty > 0 and math.isfinite(self.repeat_penalty)):
            raise DriftError(
                f"repeat_penalty must be > 0 (1 turns it off), got {self.repeat_penalty}"
            )
        if self.repeat_last_n < 0:
            raise DriftError(f"repeat_last_n must be >= 0, got {self.repeat_last_n}")
        if self.no_repeat_ngram < 0:
            raise DriftError(f"no_repeat_ngram must be >= 0 (0 turns it off), got {self.no_repeat_ngram}")
        if not (0 <= self.dry_multiplier < math.inf):
            raise DriftError(f"dry_multiplier must be >= 0 (0 turns it off), got {self.dry_multiplier}")
        if not (1 <= self.dry_base < math.inf) or self.dry_allowed_length < 1:
            raise DriftError(f"dry_base must be >= 1 and dry_allowed_length >= 1, got {self.dry_base} and {self.dry_allowed_length}")


class Sampler:
    """Turns logits into token ids; one seeded random stream per instance.

    Keeps per-vocabulary scratch buffers, so use one Sampler per thread.
    """

    def __init__(self, settings: SamplerSettings | None = None):
        self.settings = settings if settings is not None else SamplerSettings()
        self._rng = np.random.default_rng(self.settings.seed)
        # Fresh 0.5 MB arrays every token cost page faults that outweigh the
        # sampling math itself, so whole-vocabulary work reuses these.
        self._buffers: dict[str, np.ndarray] = {}
        self._all_ids = np.arange(0)

    def sample(self, logits: np.ndarray, history: Sequence[int] = (), breakers: frozenset[int] = frozenset()) -> int:
        """Pick the next token id from `logits` (V,); `history` holds earlier token ids.

        `breakers`: token ids (line breaks) that a repeat DRY penalizes never runs across.
        """
        logits = self._penalize_repeats(np.asarray(logits, dtype=np.float32), history)
        logits = self._ban_repeated_ngrams(logits, history)
        logits = self._penalize_repeated_sequences(logits, history, breakers)
        best = int(np.argmax(logits))
        if not np.isfinite(logits[best]):
            raise DriftError("the model returned invalid logits (NaN, or every token masked)")
        if self.settings.greedy or self.settings.temperature == 0:
            return best
        ids, weights = self._candidates(logits, float(logits[best]))
        ids, weights = _min_p_filter(ids, weights, self.settings.min_p)
        point = self._rng.random() * float(weights.sum(dtype=np.float64))
        # side="right" never lands on a zero-probability token (a flat step of the running sum).
        return int(ids[_search_running_sum(weights, point, side="right")])

    def _penalize_repeats(self, logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        """llama.cpp repetition penalty: shrink positive logits, push negative ones down.

        Returns `logits` itself when there is nothing to penalize, else a
        penalized copy (the caller's array is never modified).
        """
        penalty, window = self.settings.repeat_penalty, self.settings.repeat_last_n
        if penalty == 1.0 or window == 0 or len(history) == 0:
            return logits
        recent = np.unique(np.asarray(history[-window:], dtype=np.int64))
        recent = recent[(recent >= 0) & (recent < logits.size)]
        penalized = self._buffer("penalized", logits.size)
        np.copyto(penalized, logits)
        values = penalized[recent]
        penalized[recent] = np.where(values > 0, values / penalty, values * penalty)
        return penalized

    def _ban_repeated_ngrams(self, logits: np.ndarray, history: Sequence[int]) -> np.ndarray:
        """Mask every token that would complete an n-gram already in `history` (a loop's next step).

        If that would mask every token, nothing is masked: a forced repeat beats no answer.
        """
        n = self.settings.no_repeat_ngram
        if n == 0 or len(history) < n:
            return logits
        tokens = list(history)
        head = tuple(tokens[len(tokens) - n + 1 :]) if n > 1 else ()
        banned = {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i : i + n - 1]) == head}
        banned = [t for t in banned if 0 <= t < logits.size]
        if not banned:
            return logits
        masked = self._buffer("masked", logits.size)
        np.copyto(masked, logits)
        masked[banned] = -np.inf
        return masked if np.any(np.isfinite(masked)) else logits

    def _penalize_repeated_sequences(self, logits: np.ndarray, history: Sequence[int], breakers: frozenset[int]) -> np.ndarray:
        """DRY ("don't repeat yourself", as in llama.cpp): a token that would continue a repeat of
        the answer's last n ≥ allowed_length tokens loses multiplier · base^(n − allowed_length) logits.

        Single words and short phrases recur freely; only a growing loop pays, and ever more.
        """
        s = self.settings
        if s.dry_multiplier == 0 or len(history) < s.dry_allowed_length:
            return logits
        penalties = repeat_lengths(history, breakers)
        penalties = {t: s.dry_multiplier * s.dry_base ** (n - s.dry_allowed_length) for t, n in penalties.items() if n >= s.dry_allowed_length and 0 <= t < logits.size}
        if not penalties:
            return logits
        penalized = self._buffer("dry", logits.size)
        np.copyto(penalized, logits)
        ids = np.fromiter(penalties, dtype=np.int64, count=len(penalties))
        penalized[ids] -= np.fromiter(penalties.values(), dtype=np.float32, count=len(penalties))
        return penalized

    def _candidates(self, logits: np.ndarray, peak: float) -> tuple[np.ndarray, np.ndarray]:
        """Token ids surviving top-k and top-p, with their unnormalized probabilities.

        Probabilities are exp((logit − peak) / T): the top token has weight 1.
        """
        s = self.settings
        scratch = self._buffer("scratch", logits.size)
        if 0 < s.top_k < logits.size:
            ids = _top_ids(logits, s.top_k, scratch)
            weights = _tempered_weights(logits[ids].astype(np.float64), peak, s.temperature)
            # As in llama.cpp, top-p then works on the renormalized top-k set.
            return _nucleus(ids, weights, float(weights.sum()), s.top_p)
        weights = self._buffer("weights", logits.size)
        _tempered_weights(logits, peak, s.temperature, out=weights)
        if s.top_p >= 1.0:
            if self._all_ids.size != logits.size:
                self._all_ids = np.arange(logits.size)
            return self._all_ids, weights
        return _full_vocab_nucleus(logits, weights, s.top_p, scratch)

    def _buffer(self, name: str, size: int) -> np.ndarray:
        """A reusable float32 array of `size` entries (contents undefined)."""
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size != size:
            buffer = self._buffers[name] = np.empty(size, dtype=np.float32)
        return buffer


def repeat_lengths(history: Sequence[int], breakers: frozenset[int] = frozenset()) -> dict[int, int]:
    """For each token t: the longest n such that the last n tokens of `history`, then t, already
    occurred in it (so writing t would repeat n + 1 tokens). Repeats never run across a breaker."""
    tokens = list(history)
    end = len(tokens) - 1
    if end < 0 or tokens[end] in breakers:
        return {}
    lengths: dict[int, int] = {}
    for start in range(end):  # an earlier occurrence of the last token, followed by tokens[start + 1]
        if tokens[start] != tokens[end]:
            continue
        n = 1
        while n <= min(start, _MAX_REPEAT) and tokens[start - n] == tokens[end - n] and tokens[end - n] not in breakers:
            n += 1
        following = tokens[start + 1]
        lengths[following] = max(lengths.get(following, 0), n)
    return lengths


def _tempered_weights(
    logits: np.ndarray, peak: float, temperature: float, out: np.ndarray | None = None
) -> np.ndarray:
    """exp((logits − peak) / temperature), written into `out` when given.

    Shifting by the peak (softmax ignores shifts) puts the top token at exactly
    1; capping 1/T at the dtype's max keeps a tiny temperature from giving
    0 · inf = NaN there, while every other token still underflows to 0.
    """
    dtype = logits.dtype.type
    inverse_temperature = min(1.0 / temperature, float(np.finfo(logits.dtype).max))
    weights = np.subtract(logits, dtype(peak), out=out)
    weights *= dtype(inverse_temperature)
    return np.exp(weights, out=weights)


def _top_ids(values: np.ndarray, count: int, scratch: np.ndarray) -> np.ndarray:
    """Ids of the `count` largest values, largest first, ties by lower id.

    An in-place partition of a copy in `scratch` finds the cut-off value
    without sorting the vocabulary or allocating a V-sized index array.
    """
    if count >= values.size:
        return np.argsort(-values, kind="stable")
    np.copyto(scratch, values)
    scratch.partition(values.size - count)
    cutoff = scratch[values.size - count]
    above = np.flatnonzero(values > cutoff)
    # Only as many tied tokens as needed (ties are usually few or none).
    tied = np.flatnonzero(values == cutoff)[: count - above.size]
    ids = np.concatenate([above, tied])
    return ids[np.argsort(-values[ids], kind="stable")]


def _full_vocab_nucleus(
    logits: np.ndarray, weights: np.ndarray, top_p: float, scratch: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Top-p over the whole vocabulary without arg-sorting all V tokens.

    Real next-token distributions put nearly all mass on a few hundred tokens,
    so the top candidates usually hold top_p. Flat ones fall back to sorting
    the weights' values (3x faster than an argsort) to find the cut-off.
    """
    total = float(weights.sum(dtype=np.float64))  # over all V tokens, not just candidates
    if np.count_nonzero(weights) <= _NUCLEUS_CANDIDATES:
        # Typically a low temperature: every token with any mass fits.
        ids = np.flatnonzero(weights)
        ids = ids[np.argsort(-weights[ids], kind="stable")]
    else:
        # Partition the logits, not the weights: underflowed weights tie at 0,
        # and numpy's partition gets ~20x slower on heavy ties.
        ids = _top_ids(logits, _NUCLEUS_CANDIDATES, scratch)
    top = weights[ids].astype(np.float64)
    if top.sum() >= top_p * total:
        return _nucleus(ids, top, total, top_p)
    np.copyto(scratch, weights)
    scratch.sort()
    # In ascending order the nucleus is a suffix: skip the longest prefix whose
    # mass stays within 1 − top_p (searching a reversed view is much slower).
    cutoff = scratch[_search_running_sum(scratch, (1.0 - top_p) * total, side="right")]
    # Tokens tied with the cut-off are all kept, so the set is well defined.
    ids = np.flatnonzero(weights >= cutoff)
    return ids, weights[ids]


def _nucleus(
    ids: np.ndarray, weights: np.ndarray, total: float, top_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep the shortest prefix (of ids sorted by weight) holding top_p of `total`."""
    if top_p >= 1.0:
        return ids, weights
    keep = _nucleus_size(weights, total, top_p)
    return ids[:keep], weights[:keep]


def _nucleus_size(descending: np.ndarray, total: float, top_p: float) -> int:
    """How many of the weights (sorted descending) it takes to reach top_p of `total`."""
    return _search_running_sum(descending, top_p * total, side="left") + 1


def _search_running_sum(values: np.ndarray, target: float, side: str) -> int:
    """`np.searchsorted(np.cumsum(values), target, side)`, clamped to a valid index.

    A float64 cumsum over 128k entries costs more than the rest of a sampling
    step, so sum fixed-size blocks first and run the cumsum inside one block.
    """
    starts = np.arange(0, values.size, _SEARCH_BLOCK)
    block_ends = np.cumsum(np.add.reduceat(values, starts, dtype=np.float64))
    block = min(int(np.searchsorted(block_ends, target, side=side)), len(starts) - 1)
    inside = values[starts[block] : starts[block] + _SEARCH_BLOCK]
    running = np.cumsum(inside, dtype=np.float64) + (block_ends[block - 1] if block else 0.0)
    # Clamping inside the block guards against rounding between the two sums.
    offset = min(int(np.searchsorted(running, target, side=side)), len(inside) - 1)
    return int(starts[block]) + offset


def _min_p_filter(
    ids: np.ndarray, weights: np.ndarray, min_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """Drop tokens whose probability is below min_p × the top token's probability."""
    if min_p <= 0:
        return ids, weights
    keep = np.flatnonzero(weights >= min_p * weights.max())
    return ids[keep], weights[keep]


def _logsumexp(values: np.ndarray) -> float:
    peak = float(values.max())
    return peak + math.log(float(np.sum(np.exp(values - peak), dtype=np.float64)))


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log softmax in float64."""
    values = np.asarray(logits, dtype=np.float64)
    peak = values.max()
    if not np.isfinite(peak):
        raise DriftError("cannot normalize logits that are NaN, infinite, or all masked")
    return values - _logsumexp(values)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax in float64."""
    return np.exp(log_softmax(logits))


def entropy_bits(logits: np.ndarray) -> float:
    """Shannon entropy, in bits, of softmax(logits)."""
    log_probs = log_softmax(logits)
    probs = np.exp(log_probs)
    # Masked tokens (−inf) have p = 0 and contribute nothing; skip 0 · (−inf) = NaN.
    terms = np.multiply(probs, log_probs, out=np.zeros_like(probs), where=probs > 0)
    return float(-terms.sum() / math.log(2.0))
