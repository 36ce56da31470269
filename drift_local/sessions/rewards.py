"""Zero-shot rewards of preference pairs, scored by the sLM once and cached in the store.

A response's log-probability under each system prompt is cached per (sLM fingerprint,
response cap, system, prompt, response), so adding a pair or an attribute scores only
what is new, and refits are instant.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from drift_local.attributes import AttributeSet
from drift_local.drift.approx import Pairs, reward_matrix
from drift_local.drift.style import style_rates
from drift_local.engine.template import ChatFormat
from drift_local.engine.context import Context, ContextSettings
from drift_local.engine.model import Model
from drift_local.engine.scoring import ScoreRequest, Scorer
from drift_local.store.store import Pair, Store

# Waves of 16 sequences in 4096 KV cells: full batches, short attention spans (measured with
# benchmarks/scoring.py: larger waves cost more per token, smaller ones limit response length).
SCORING_SEQUENCES = 16
SCORING_CELLS = 4096


class RewardCache:
    def __init__(self, store: Store, slm: Model, settings: ContextSettings, max_response_tokens: int = 0):
        self.store = store
        self.slm = slm
        self.settings = settings
        self.cap = max_response_tokens
        self.stored = 0  # scores stored by fill() so far
        self._scorer: Scorer | None = None

    @property
    def _n_ctx(self) -> int:
        return max(self.settings.n_ctx, 2048)

    @property
    def context_tokens(self) -> int:
        """The tokens a prompt and one response may have together to be scored (the context's n_ctx_seq)."""
        return min(self._n_ctx, self.slm.n_ctx_train) if self.slm.n_ctx_train > 0 else self._n_ctx

    @property
    def scorer(self) -> Scorer:
        if self._scorer is None:  # built on first use: a fully cached refit needs no context
            n_ctx = self._n_ctx
            context = Context(
                self.slm, SCORING_SEQUENCES, ContextSettings(n_ctx, self.settings.n_batch, self.settings.threads),
                n_cells=max(SCORING_CELLS, n_ctx),
            )
            self._scorer = Scorer(context, ChatFormat(self.slm), self.cap)
        return self._scorer

    def missing(self, pairs: Sequence[Pair], attributes: AttributeSet) -> list[ScoreRequest]:
        """What is not cached yet, as score requests (both responses of a pair share one)."""
        keys = _keys(pairs, attributes)
        cached = self.store.get_logprobs(self.slm.fingerprint, self.cap, keys)
        todo: dict[tuple[str, str], list[str]] = {}
        for system, prompt, response in keys:
            if (system, prompt, response) not in cached:
                responses = todo.setdefault((system, prompt), [])
                if response not in responses:
                    responses.append(response)
        return [ScoreRequest(system, prompt, tuple(r)) for (system, prompt), r in todo.items()]

    def fill(
        self,
        requests: Sequence[ScoreRequest],
        progress: Callable[[int], None] | None = None,
        chunk_requests: int = SCORING_SEQUENCES // 2,
    ) -> None:
        """Score and store, one committed chunk at a time: an interruption keeps finished work.

        Responses too long for the context with their prompt are not stored (see scored_pairs)."""
        for first in range(0, len(requests), chunk_requests):
            chunk = requests[first : first + chunk_requests]
            scored = self.scorer.score(chunk, progress)
            rows = [
                (request.system, request.prompt, response, result.logprob, result.n_tokens)
                for request, results in zip(chunk, scored)
                for response, result in zip(request.responses, results)
                if result is not None
            ]
            self.store.put_logprobs(self.slm.fingerprint, self.cap, rows)
            self.stored += len(rows)

    def scored_pairs(self, pairs: Sequence[Pair], attributes: AttributeSet) -> list[Pair]:
        """The pairs whose every score is cached: after fill_missing, those that fit the context."""
        cached = self.store.get_logprobs(self.slm.fingerprint, self.cap, _keys(pairs, attributes))
        systems = [attributes.base, *attributes.prompts]
        return [p for p in pairs if all((s, p.prompt, r) in cached for s in systems for r in (p.chosen, p.rejected))]

    def fill_missing(
        self,
        pairs: Sequence[Pair],
        attributes: AttributeSet,
        progress: Callable[[int], Callable[[int], None]] | None = None,
    ) -> int:
        """Score whatever of these pairs is not cached; returns the tokens that covered.

        `progress(total)` is called once with the job's size and returns the advance callback.
        """
        todo = self.missing(pairs, attributes)
        if not todo:
            return 0
        total = self.scorer.tokens_needed(todo)
        self.fill(todo, progress(total) if progress else None)
        return total

    def rewards(self, pairs: Sequence[Pair], attributes: AttributeSet, mode: str) -> Pairs:
        """Reward matrices from the cache; every key must be cached (call fill first).

        Pairs answering the same prompt get the same group (cross-validation keeps them together).
        """
        keys = _keys(pairs, attributes)
        cached = self.store.get_logprobs(self.slm.fingerprint, self.cap, keys)
        missing = len(set(keys)) - len(cached)
        if missing:
            raise RuntimeError(f"{missing} log-probabilities are not cached; fill() first")
        systems = [attributes.base, *attributes.prompts]
        if not pairs:
            return Pairs.of(np.zeros((0, len(attributes.prompts))), np.zeros((0, len(attributes.prompts))))

        def side(pick: Callable[[Pair], str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            logp = np.array([[cached[(s, p.prompt, pick(p))][0] for s in systems] for p in pairs])
            tokens = np.array([cached[(attributes.base, p.prompt, pick(p))][1] for p in pairs])
            return reward_matrix(logp[:, 1:], logp[:, 0], tokens, mode), tokens, style_rates([pick(p) for p in pairs], tokens)

        win, win_tokens, win_style = side(lambda p: p.chosen)
        lose, lose_tokens, lose_style = side(lambda p: p.rejected)
        prompt_ids: dict[str, int] = {}
        groups = np.array([prompt_ids.setdefault(p.prompt, len(prompt_ids)) for p in pairs])
        return Pairs.of(win, lose, win_tokens, lose_tokens, groups, win_style, lose_style)


def _keys(pairs: Sequence[Pair], attributes: AttributeSet) -> list[tuple[str, str, str]]:
    systems = [attributes.base, *attributes.prompts]
    return [(s, p.prompt, r) for p in pairs for s in systems for r in (p.chosen, p.rejected)]


# Measured: SmolLM2-135M's F16 copy (271 MB) scores ~420 tokens/s on 2 idle CPU cores; 250
# leaves room for a busy machine. Other models scale by their file size, roughly.
_MEASURED_TOKENS_PER_S, _MEASURED_BYTES, _MEASURED_THREADS = 250.0, 271e6, 2


def rough_scoring_seconds(model_bytes: int, tokens: int, threads: int) -> float:
    """A rough upper bound on scoring time, before any is done (shared prefixes make it faster)."""
    rate = _MEASURED_TOKENS_PER_S * _MEASURED_BYTES / max(model_bytes, 1) * max(threads, 1) / _MEASURED_THREADS
    return tokens / rate
