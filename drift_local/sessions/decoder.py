"""Drift Decoding (Algorithm 2): the LLM's next-token logits steered by the sLM's attribute prompts.

Each step advances the LLM's sequence and the sLM's base + k attribute sequences, one
`llama_decode` per context (one in all when the LLM is the sLM), then combines the logits:
h = h_LLM + (1/β) Σ p_i (h_i − h_base). Every sequence keeps its KV state across turns, so a
new turn only feeds each of them the new tokens.
"""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from drift_local.drift.decoding import Sampler, drift_logits, entropy_bits
from drift_local.engine.chat import ChatFormat, Message
from drift_local.engine.context import Context, ContextSettings, PromptTooLong
from drift_local.sessions.runtime import Models


@dataclass(frozen=True)
class Steering:
    """The profile's contribution: k attribute prompts, their weights, and the base prompt."""

    base: str
    names: tuple[str, ...]
    prompts: tuple[str, ...]
    weights: np.ndarray

    @property
    def k(self) -> int:
        return len(self.names)


@dataclass
class Step:
    token: int
    text: str  # the new characters this token completes (UTF-8 may span tokens)
    entropy_llm: float | None = None  # bits
    entropy_drift: float | None = None


@dataclass
class Answer:
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    stop: str = "length"  # eos, length, context
    entropy_llm: list[float] = field(default_factory=list)
    entropy_drift: list[float] = field(default_factory=list)


class DriftDecoder:
    def __init__(self, models: Models, k: int, settings: ContextSettings, llm_system: str | None = None):
        self.models = models
        self.k = k
        self.llm_system = llm_system
        self.llm_chat = ChatFormat(models.llm)
        self.slm_chat = self.llm_chat if models.shared else ChatFormat(models.slm)
        # With one model for both roles, the LLM's sequence joins the sLM's context: one decode a step.
        n_slm = k + 1 + (1 if models.shared else 0)
        self.slm_ctx = Context(models.slm, n_slm, settings)
        self.llm_ctx = self.slm_ctx if models.shared else Context(models.llm, 1, settings)
        self.llm_seq = k + 1 if models.shared else 0

    @property
    def n_ctx(self) -> int:
        return min(self.llm_ctx.n_ctx_seq, self.slm_ctx.n_ctx_seq)

    def prompts(self, conversation: Sequence[Message], steering: Steering | None) -> dict[str, list[int]]:
        """Token lists of every sequence for this conversation: 'llm', 'base', then attributes."""
        out = {"llm": self.llm_chat.tokens(_with_system(self.llm_system, conversation))}
        if steering is not None:
            for name, system in (("base", steering.base), *zip(steering.names, steering.prompts)):
                out[name] = self.slm_chat.tokens(_with_system(system, conversation))
        return out

    def stream(
        self,
        conversation: Sequence[Message],
        steering: Steering | None,
        *,
        beta: float,
        sampler: Sampler,
        max_tokens: int,
        stats: bool = False,
        answer: Answer | None = None,
    ) -> Iterator[Step]:
        """Generate the assistant's next message token by token.

        With steering None (no profile, or plain mode) only the LLM runs. Pass `answer` to
        collect the full result; it is filled even if the caller stops early (Ctrl-C).
        """
        answer = answer if answer is not None else Answer()
        steering = steering if steering is not None and steering.k and math.isfinite(beta) else None
        if steering is not None and steering.k > self.k:
            raise ValueError(f"decoder built for {self.k} attributes, steering has {steering.k}")
        prompts = self.prompts(conversation, steering)
        longest = max(len(p) for p in prompts.values())
        if longest >= self.n_ctx:
            raise PromptTooLong(
                f"the prompt ({longest} tokens) does not fit the context of {self.n_ctx} tokens",
                "shorten it or raise --n-ctx",
            )
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        weights = steering.weights if steering is not None else None
        n_vocab = self.models.n_vocab
        for _ in range(max_tokens):
            if max(len(p) for p in prompts.values()) + len(answer.tokens) >= self.n_ctx:
                answer.stop = "context"
                break
            h_llm, h_slm = self._logits(prompts, answer.tokens, steering is not None)
            if steering is not None:
                logits = drift_logits(h_llm[:n_vocab], h_slm[1:, :n_vocab], h_slm[0, :n_vocab], weights, beta)
            else:
                logits = h_llm[:n_vocab]
            token = sampler.sample(logits, answer.tokens)
            step = Step(token, decoder.decode(self.models.llm.token_bytes(token)))
            if stats:
                step.entropy_llm = entropy_bits(h_llm[:n_vocab])
                step.entropy_drift = entropy_bits(logits)
                answer.entropy_llm.append(step.entropy_llm)
                answer.entropy_drift.append(step.entropy_drift)
            if self.models.llm.is_end_of_generation(token):
                answer.stop = "eos"
                break
            answer.tokens.append(token)
            answer.text += step.text
            yield step

    def _logits(self, prompts: dict[str, list[int]], generated: list[int], steer: bool) -> tuple[np.ndarray, np.ndarray | None]:
        llm_target = {self.llm_seq: prompts["llm"] + generated}
        if not steer:
            return self.llm_ctx.last_logits(llm_target)[0], None
        slm_targets = {seq: tokens + generated for seq, tokens in enumerate(v for k, v in prompts.items() if k != "llm")}
        if self.models.shared:
            rows = self.slm_ctx.last_logits({**slm_targets, **llm_target})
            return rows[-1], rows[:-1]
        return self.llm_ctx.last_logits(llm_target)[0], self.slm_ctx.last_logits(slm_targets)


def _with_system(system: str | None, conversation: Sequence[Message]) -> list[Message]:
    rest = [m for m in conversation if m.role != "system"]
    return ([Message("system", system)] if system is not None else []) + rest
