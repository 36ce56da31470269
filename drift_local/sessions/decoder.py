"""Drift Decoding (Algorithm 2): the LLM's next-token logits steered by the sLM's attribute prompts.

Each step advances the LLM's sequence and the sLM's base + k attribute sequences, one
`llama_decode` per context (one in all when the LLM is the sLM), then combines the logits
(`drift.steering`). `DriftDecoder` writes one answer at a time and keeps every sequence's
KV state across turns, so a new turn only feeds the new tokens. `BatchDecoder` writes many
answers at once, each with its own steering: one `llama_decode` a step advances them all.
"""

from __future__ import annotations

import codecs
import functools
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence

import numpy as np

from drift_local.drift.sampling import Sampler, entropy_bits, log_softmax
from drift_local.drift.steering import Decoding, drift_logits
from drift_local.drift.style import (
    STYLE_FEATURES, STYLE_NAMES, Position, TokenClasses, at_ceiling, describe_style, position, style_bias, token_classes,
)
from drift_local.engine.template import ChatFormat, Message
from drift_local.engine.context import Context, ContextSettings, PromptTooLong
from drift_local.engine.model import Model
from drift_local.errors import DriftError
from drift_local.sessions.runtime import Models


@dataclass(frozen=True)
class Steering:
    """The profile's contribution: k attribute prompts, their weights, and the base prompt."""

    base: str
    names: tuple[str, ...]
    prompts: tuple[str, ...]
    weights: np.ndarray
    end_bias: float = 0.0  # reward for ending the answer now: > 0 for a taste for shorter answers
    style_weights: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (S,) per drift.style feature
    answer_tokens: float = 0.0  # the fitted answers' mean length: turns style rates into per-token rewards
    style_ceilings: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (S,) highest fitted rates; empty: no cap

    @property
    def k(self) -> int:
        return len(self.names)

    @property
    def styled(self) -> bool:
        return bool(np.any(self.style_weights))

    def style(self) -> dict[str, float]:
        """The non-zero style weights by feature name."""
        return {name: float(w) for name, w in zip(STYLE_NAMES, self.style_weights) if w}

    def describe(self) -> str:
        """'formal +0.12, humor -0.05, fewer exclamation marks -0.50': what steers, for a person."""
        parts = [f"{n} {w:+.2f}" for n, w in zip(self.names, self.weights)]
        style = describe_style(self.style())
        return ", ".join(parts + ([style] if style else [])) or "nothing"

    @property
    def active(self) -> bool:
        return self.k > 0 or self.end_bias != 0.0 or self.styled


@dataclass
class Step:
    token: int
    text: str  # the new characters this token completes (UTF-8 may span tokens)
    entropy_llm: float | None = None  # bits
    entropy_drift: float | None = None
    llm_logprob: float | None = None  # of this token under the plain LLM, nats


@dataclass
class Answer:
    text: str = ""
    tokens: list[int] = field(default_factory=list)
    stop: str = "length"  # eos, length, context, interrupted
    prompt_tokens: int = 0  # the LLM's prompt, once the answer is started
    entropy_llm: list[float] = field(default_factory=list)
    entropy_drift: list[float] = field(default_factory=list)
    llm_logprobs: list[float] = field(default_factory=list)  # each token's, the end included

    def mean_llm_logprob(self) -> float:
        """How plausible the plain LLM finds this answer, per token (a fluency measure)."""
        return sum(self.llm_logprobs) / len(self.llm_logprobs) if self.llm_logprobs else float("nan")


@dataclass
class Request:
    """One answer to write: the conversation so far, whose taste steers it, and how to sample."""

    conversation: Sequence[Message]
    steering: Steering | None
    decoding: Decoding
    sampler: Sampler
    max_tokens: int
    stats: bool = False  # record per-step entropies and the plain LLM's log-probabilities
    answer: Answer = field(default_factory=Answer)

    @property
    def steered(self) -> bool:
        return self.steering is not None and self.steering.active and self.decoding.steers


@functools.cache
def _pieces(llm: Model, n_vocab: int) -> tuple[str, ...]:
    """Each token's text alone, decoded once a model."""
    return tuple(llm.token_bytes(i).decode("utf-8", errors="replace") for i in range(n_vocab))


@functools.cache
def _token_classes(llm: Model, n_vocab: int) -> TokenClasses:
    """Which LLM tokens write each style feature: built once a model (~0.5 s for 49k tokens)."""
    return token_classes(_pieces(llm, n_vocab))


# DRY's sequence breakers, as llama.cpp's defaults: a repeat never runs across a line break,
# a colon, a quote or markdown emphasis, so list items and headings may share their shape.
DRY_BREAKERS = ("\n", ":", '"', "*")


@functools.cache
def _dry_breakers(llm: Model, n_vocab: int) -> frozenset[int]:
    """The LLM's tokens that hold a DRY sequence breaker."""
    return frozenset(i for i, piece in enumerate(_pieces(llm, n_vocab)) if any(b in piece for b in DRY_BREAKERS))


class _Roles:
    """The chat formats and contexts of the LLM and sLM roles (one context when they are one file)."""

    def __init__(self, models: Models, llm_system: str | None):
        self.models = models
        self.llm_system = llm_system
        self.llm_chat = ChatFormat(models.llm)
        self.slm_chat = self.llm_chat if models.shared else ChatFormat(models.slm)

    @property
    def token_classes(self) -> TokenClasses:
        return _token_classes(self.models.llm, self.models.n_vocab)

    @property
    def dry_breakers(self) -> frozenset[int]:
        return _dry_breakers(self.models.llm, self.models.n_vocab)

    def prompts(self, conversation: Sequence[Message], steering: Steering | None) -> dict[str, list[int]]:
        """Token lists of every sequence: 'llm', then (when steering) 'base' and each attribute.

        The LLM keeps the conversation's own system message (or `llm_system`); each sLM
        sequence has its attribute's system prompt instead.
        """
        out = {"llm": self.llm_chat.tokens(_with_system(self.llm_system, conversation, keep_own=True))}
        if steering is not None:
            for name, system in (("base", steering.base), *zip(steering.names, steering.prompts)):
                out[name] = self.slm_chat.tokens(_with_system(system, conversation))
        return out


class _Run:
    """An answer being written: its sequences, prompts and the incremental text decoder."""

    def __init__(self, roles: _Roles, request: Request, n_ctx: int):
        self.request = request
        self.steering = request.steering if request.steered else None
        self.prompts = roles.prompts(request.conversation, self.steering)
        longest = max(len(p) for p in self.prompts.values())
        if longest >= n_ctx:
            raise PromptTooLong(
                f"the prompt ({longest} tokens) does not fit the context of {n_ctx} tokens",
                "shorten it or raise --n-ctx",
            )
        self.longest = longest
        self.n_ctx = n_ctx
        request.answer.prompt_tokens = len(self.prompts["llm"])
        self.model = roles.models.llm
        self.n_vocab = roles.models.n_vocab
        styled = self.steering is not None and self.steering.styled
        self.classes = roles.token_classes if styled else None
        # The style bias by text position (line start, sentence start, inside a number), by
        # which liked features are at their ceiling and which the answer lacks; the liked
        # features' leads by position.
        # Few combinations occur, so each is worked out once.
        self.style_bias_at: dict[tuple[Position, tuple[int, ...], tuple[int, ...]], np.ndarray] = {}
        self.leads_at: dict[Position, list[np.ndarray]] = {}
        self.liked = [] if self.classes is None else [j for j, w in enumerate(self.steering.style_weights) if w > 0]
        self.breakers = roles.dry_breakers
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.seqs: dict[str, tuple[Context, int]] = {}  # sequence name -> (context, seq id)

    @property
    def answer(self) -> Answer:
        return self.request.answer

    def finished(self) -> bool:
        """True once the answer has ended; sets its stop reason for limits reached before a step."""
        answer = self.answer
        if answer.stop in ("eos", "interrupted"):
            return True
        if len(answer.tokens) >= self.request.max_tokens:
            answer.stop = "length"
            return True
        if self.longest + len(answer.tokens) >= self.n_ctx:
            answer.stop = "context"
            return True
        return False

    def targets(self) -> dict[str, list[int]]:
        return {name: tokens + self.answer.tokens for name, tokens in self.prompts.items()}

    def advance(self, rows: dict[str, np.ndarray]) -> Step | None:
        """Combine this step's logits, sample, and extend the answer; None when it ended."""
        request, answer, n_vocab = self.request, self.answer, self.n_vocab
        h_llm = rows["llm"][:n_vocab]
        if self.steering is not None:
            h_attr = np.stack([rows[name][:n_vocab] for name in self.steering.names]) if self.steering.k else np.empty((0, n_vocab), np.float32)
            logits = drift_logits(
                h_llm, h_attr, rows["base"][:n_vocab], self.steering.weights, request.decoding,
                self.steering.end_bias, self.model.end_of_generation_ids, *self._style(),
            )
        else:
            logits = h_llm
        token = request.sampler.sample(logits, answer.tokens, self.breakers)
        step = Step(token, self.utf8.decode(self.model.token_bytes(token)))
        if request.stats:
            step.entropy_llm = entropy_bits(h_llm)
            step.entropy_drift = entropy_bits(logits)
            step.llm_logprob = float(log_softmax(h_llm)[token])
            answer.entropy_llm.append(step.entropy_llm)
            answer.entropy_drift.append(step.entropy_drift)
            answer.llm_logprobs.append(step.llm_logprob)
        if self.model.is_end_of_generation(token):
            answer.stop = "eos"
            return None
        answer.tokens.append(token)
        answer.text += step.text
        return step


    def _style(self) -> tuple[np.ndarray | None, np.ndarray | None, bool]:
        """This step's style bias; the tokens of liked styles the answer does not hold yet
        (within reach below α: a first "!" where SmolLM2 would rarely write one); and whether
        the text ends a sentence (where the answer may end below α)."""
        text = self.answer.text
        at = position(text)
        if self.classes is None:
            return None, None, at.sentence_start and not at.opening
        s = self.steering
        counts = np.zeros(len(STYLE_FEATURES), dtype=np.int64)
        counts[self.liked] = [STYLE_FEATURES[j].count(text) for j in self.liked]
        full = at_ceiling(s.style_weights, s.style_ceilings, counts, len(self.answer.tokens))
        absent = tuple(j for j in self.liked if not counts[j])
        if (at, full, absent) not in self.style_bias_at:
            weights = s.style_weights.copy()
            weights[list(full)] = 0.0
            self.style_bias_at[(at, full, absent)] = style_bias(weights, self.classes, s.answer_tokens, at, absent)
        if at not in self.leads_at:
            leads = self.classes.leads(at)
            self.leads_at[at] = [np.flatnonzero(leads[j]) for j in self.liked]
        missing = [ids for j, ids in zip(self.liked, self.leads_at[at]) if j in absent]
        return self.style_bias_at[(at, full, absent)], np.concatenate(missing) if missing else None, at.sentence_start and not at.opening


def _decode(runs: Sequence[_Run]) -> list[dict[str, np.ndarray]]:
    """One `llama_decode` per context for every run's sequences; each run's logits by name."""
    by_context: dict[int, tuple[Context, dict[int, list[int]]]] = {}
    for run in runs:
        for name, tokens in run.targets().items():
            context, seq = run.seqs[name]
            by_context.setdefault(id(context), (context, {}))[1][seq] = tokens
    rows: dict[tuple[int, int], np.ndarray] = {}
    for context, targets in by_context.values():
        for seq, row in zip(targets, context.last_logits(targets)):
            rows[(id(context), seq)] = row
    return [{name: rows[(id(context), seq)] for name, (context, seq) in run.seqs.items()} for run in runs]


class DriftDecoder:
    """One answer at a time, with KV states kept across turns (chat, generate)."""

    def __init__(self, models: Models, k: int, settings: ContextSettings, llm_system: str | None = None):
        self.models = models
        self.k = k
        self.roles = _Roles(models, llm_system)
        # With one model for both roles, the LLM's sequence joins the sLM's context: one decode a step.
        n_slm = k + 1 + (1 if models.shared else 0)
        self.slm_ctx = Context(models.slm, n_slm, settings, unified=False)  # the sequences share nothing: a stream each
        self.llm_ctx = self.slm_ctx if models.shared else Context(models.llm, 1, settings)
        self.llm_seq = k + 1 if models.shared else 0

    @property
    def llm_system(self) -> str | None:
        return self.roles.llm_system

    @llm_system.setter
    def llm_system(self, system: str | None) -> None:
        self.roles.llm_system = system

    @property
    def llm_chat(self) -> ChatFormat:
        return self.roles.llm_chat

    @property
    def n_ctx(self) -> int:
        return min(self.llm_ctx.n_ctx_seq, self.slm_ctx.n_ctx_seq)

    def prompts(self, conversation: Sequence[Message], steering: Steering | None) -> dict[str, list[int]]:
        return self.roles.prompts(conversation, steering)

    def stream(
        self,
        conversation: Sequence[Message],
        steering: Steering | None,
        *,
        decoding: Decoding,
        sampler: Sampler,
        max_tokens: int,
        stats: bool = False,
        answer: Answer | None = None,
    ) -> Iterator[Step]:
        """Generate the assistant's next message token by token.

        With steering None (no profile, or plain mode) only the LLM runs. Pass `answer` to
        collect the full result; it is filled even if the caller stops early (Ctrl-C).
        """
        request = Request(conversation, steering, decoding, sampler, max_tokens, stats, answer if answer is not None else Answer())
        if request.steered and request.steering.k > self.k:
            raise ValueError(f"decoder built for {self.k} attributes, steering has {request.steering.k}")
        run = _Run(self.roles, request, self.n_ctx)
        run.seqs["llm"] = (self.llm_ctx, self.llm_seq)
        if run.steering is not None:
            for seq, name in enumerate(("base", *run.steering.names)):
                run.seqs[name] = (self.slm_ctx, seq)
        while not run.finished():
            step = run.advance(_decode([run])[0])
            if step is None:
                return
            yield step


# Tokens an answer must find already decoded on a free sequence to take it out of id order:
# a break in consecutive ids costs an extra ubatch every step.
MIN_REUSE = 16


class BatchDecoder:
    """Many answers at once, each with its own conversation, steering and sampler.

    Every step is one `llama_decode` per context for all answers in progress (one in all
    when the LLM is the sLM), as llama-server's slots share a batch. An answer is admitted
    when the contexts have free sequences for it; until then it waits in order. Each
    sequence is a KV stream of its own: the answers share no tokens, and in one unified
    cache every token of a step would attend over all answers' cells. A finished answer's
    tokens stay on its sequences, for a later answer that begins the same way.
    """

    def __init__(
        self, models: Models, settings: ContextSettings, *, n_seq: int, n_cells: int, llm_system: str | None = None,
        llm_seq: int | None = None, llm_cells: int | None = None,
    ):
        """n_seq, n_cells: the sLM context's (the only one when the LLM is the sLM); llm_seq,
        llm_cells: a separate LLM's, which holds one sequence per answer (default: the same).
        Each sequence has a KV stream of its own, n_cells / n_seq cells (at most settings.n_ctx)."""
        self.models = models
        self.roles = _Roles(models, llm_system)
        self.slm_ctx = _streams(models.slm, n_seq, n_cells, settings)
        self.llm_ctx = self.slm_ctx if models.shared else _streams(models.llm, llm_seq or n_seq, llm_cells or n_cells, settings)
        self._free = {id(c): set(range(c.n_seq)) for c in (self.slm_ctx, self.llm_ctx)}
        self.active: list[_Run] = []

    @property
    def n_ctx(self) -> int:
        return min(self.llm_ctx.n_ctx_seq, self.slm_ctx.n_ctx_seq)

    def admit(self, request: Request) -> bool:
        """Start writing this answer if there are free sequences for it now; False leaves it for later."""
        run, contexts, need = self._plan(request)
        if any(count > len(self._free[key]) for key, count in need.items()):
            return False
        for name, context in contexts.items():
            seq = self._pick(context, run.prompts[name])
            self._free[id(context)].remove(seq)
            run.seqs[name] = (context, seq)
        self.active.append(run)
        return True

    def check(self, request: Request) -> None:
        """Raise DriftError (PromptTooLong for the context) if this answer could never be admitted."""
        self._plan(request)

    def _pick(self, context: Context, prompt: list[int]) -> int:
        """The free sequence to write `prompt` on: the one whose kept tokens (an earlier answer's)
        begin it for longest, else the lowest id. A step's sequences then form few runs of
        consecutive ids (llama.cpp decodes each run as one ubatch), and a conversation's next
        turn, or another answer with the same system prompt, skips what is already decoded."""
        def reuse(seq: int) -> int:
            kept = context.cached_prefix(seq, prompt)
            return kept if kept >= MIN_REUSE else 0

        return max(self._free[id(context)], key=lambda seq: (reuse(seq), -seq))

    def _plan(self, request: Request) -> tuple[_Run, dict[str, Context], Counter[int]]:
        """The run for a request, its contexts by sequence name, and the sequences it needs per context."""
        run = _Run(self.roles, request, self.n_ctx)
        names = ["llm", *(("base", *run.steering.names) if run.steering is not None else ())]
        contexts = {name: self.llm_ctx if name == "llm" else self.slm_ctx for name in names}
        need = Counter(id(c) for c in contexts.values())
        for context in {id(c): c for c in contexts.values()}.values():
            if need[id(context)] > context.n_seq:
                raise DriftError(
                    f"one answer needs {need[id(context)]} sequences; the batch holds {context.n_seq}",
                    "raise the batch's sequences, or use fewer attributes",
                )
        return run, contexts, need

    def step(self) -> list[tuple[Request, Step | None]]:
        """Advance every answer in progress by one token; None marks an answer that ended."""
        running = []
        events: list[tuple[Request, Step | None]] = []
        for run in self.active:
            if run.finished():
                events.append((run.request, None))
                self._release(run)
            else:
                running.append(run)
        if running:
            for run, rows in zip(running, _decode(running)):
                step = run.advance(rows)
                events.append((run.request, step))
                if step is None:
                    self._release(run)
        return events

    def cancel(self, request: Request) -> None:
        """Stop an answer now and free its sequences (a client that went away) for the next one."""
        for run in self.active:
            if run.request is request:
                request.answer.stop = "interrupted"
                self._release(run)
                return

    def run_all(self, requests: Sequence[Request]) -> list[Answer]:
        """Write every answer, admitting waiting ones as room frees up."""
        waiting = list(requests)
        while waiting or self.active:
            while waiting and self.admit(waiting[0]):
                waiting.pop(0)
            self.step()
        return [r.answer for r in requests]

    def _release(self, run: _Run) -> None:
        self.active.remove(run)
        for context, seq in run.seqs.values():  # its tokens stay cached until the sequence is reused
            self._free[id(context)].add(seq)


def _streams(model, n_seq: int, n_cells: int, settings: ContextSettings) -> Context:
    """A context of n_seq per-sequence KV streams sharing n_cells."""
    return Context(model, n_seq, replace(settings, n_ctx=min(settings.n_ctx, max(1, n_cells // n_seq))), unified=False)


def _with_system(system: str | None, conversation: Sequence[Message], keep_own: bool = False) -> list[Message]:
    """The conversation under `system`; with keep_own, its own system message wins if it has one."""
    own = [m for m in conversation if m.role == "system"]
    rest = [m for m in conversation if m.role != "system"]
    if keep_own and own:
        return own[:1] + rest
    return ([Message("system", system)] if system is not None else []) + rest
