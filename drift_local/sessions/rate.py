"""Teach a profile by choosing between two answers, with active learning of what to ask.

Each round the LLM answers one prompt twice, steered toward and away from one attribute.
The active rule picks the attribute whose weight is least certain now: the spread of p_i
over bootstrap resamples of the profile's pairs, with attributes never asked about first
(the paper's section 5 suggests using each attribute's variance this way). The random rule
picks one uniformly. Both answers are scored under every attribute prompt while the person
reads; a choice is stored at once and p is refit from cached rewards.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from drift_local.attributes import AttributeSet
from drift_local.drift.approx import DEFAULT_METHOD, Fit, bootstrap_weights, fit_pairs
from drift_local.drift.sampling import Sampler, SamplerSettings
from drift_local.drift.steering import Decoding
from drift_local.engine.chat import Message
from drift_local.errors import DriftError
from drift_local.profiles.store import PairIn, Profile, Store
from drift_local.sessions.decoder import Answer, DriftDecoder, Steering
from drift_local.sessions.fit import profile_pairs, save_fit
from drift_local.sessions.rewards import PairText, RewardCache

STRATEGIES = ("active", "random")
CHOICES = {"1": "first", "2": "second", "t": "tie", "s": "skip"}


def bundled_prompts() -> list[str]:
    text = resources.files("drift_local.data").joinpath("prompts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def read_prompts(path) -> list[str]:
    from pathlib import Path

    try:
        lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DriftError(f"cannot read prompts from {path}: {getattr(exc, 'strerror', None) or exc}", "give a UTF-8 text file, one prompt a line") from None
    prompts = [line for line in lines if line and not line.startswith("#")]
    if not prompts:
        raise DriftError(f"{path} has no prompts", "one prompt a line; lines starting with # are ignored")
    return prompts


@dataclass
class Candidates:
    prompt: str
    attribute: str  # the first answer is steered toward it, the second away from it
    texts: tuple[str, str]

    def pair(self, choice: str) -> PairIn:
        first, second = self.texts
        if choice == "second":
            first, second = second, first
        return PairIn(self.prompt, first, second, tie=choice == "tie", source=f"rate:{self.attribute}")

    def as_pair_text(self) -> PairText:
        return PairText(self.prompt, self.texts[0], self.texts[1])


@dataclass
class Rater:
    """The rate session's state and rules; the UI decides when each step runs."""

    store: Store
    profile: Profile
    attributes: AttributeSet
    cache: RewardCache
    strategy: str = "active"
    method: str = DEFAULT_METHOD
    reward: str = "sum"
    seed: int = 0
    asked: dict[str, int] = field(default_factory=dict)
    recorded: list[int] = field(default_factory=list)  # pair ids stored this session, for undo
    fit: Fit | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise DriftError(f"unknown strategy {self.strategy!r}", "use active or random")
        self.rng = np.random.default_rng(self.seed)

    # --- what to ask ---------------------------------------------------------------------
    def next_attribute(self) -> str:
        names = self.attributes.names
        if self.strategy == "random":
            return names[int(self.rng.integers(len(names)))]
        unasked = [n for n in names if n not in self.asked]
        if unasked and len(self.recorded) < len(names) // 4:
            # Cold start: spread the first questions over attributes nobody asked about yet.
            return unasked[int(self.rng.integers(len(unasked)))]
        spread = self.uncertainty()
        return names[int(np.argmax(spread + 1e-9 * self.rng.random(len(names))))]

    def ask_about(self) -> tuple[str, int]:
        """The next attribute to contrast, and a seed for writing its two answers."""
        attribute = self.next_attribute()
        self.asked[attribute] = self.asked.get(attribute, 0) + 1
        return attribute, int(self.rng.integers(2**31))

    def uncertainty(self) -> np.ndarray:
        """Bootstrap standard deviation of each p_i over the profile's pairs."""
        rewards = self._rewards()
        if rewards is None or len(rewards.win) < 2:
            return np.ones(len(self.attributes.names))
        boot = bootstrap_weights(rewards, 64, self.rng)
        return boot.std(axis=0)

    # --- choices -----------------------------------------------------------------------------
    def choose(self, candidates: Candidates, choice: str) -> Fit | None:
        """Store the choice durably, then refit from cached rewards (score first)."""
        if choice == "skip":
            return self.fit
        [pair_id] = self.store.add_pairs(self.profile, [candidates.pair(choice)])
        self.recorded.append(pair_id)
        return self.refit()

    def undo(self) -> Fit | None:
        if not self.recorded:
            raise DriftError("nothing to undo in this session")
        self.store.delete_pair(self.profile, self.recorded.pop())
        return self.refit()

    def refit(self) -> Fit | None:
        rewards = self._rewards()
        try:
            self.fit = fit_pairs(rewards, self.method) if rewards is not None else None
        except DriftError:  # e.g. only ties so far: no direction yet
            self.fit = None
        if self.fit is not None:
            left_out = self.store.count_pairs(self.profile, include_ties=False) - self.fit.n_pairs  # too long to score
            save_fit(self.store, self.profile, self.cache.slm, rewards, self.fit, self.attributes.names, self.reward, left_out)
        return self.fit

    def _rewards(self):
        pairs = self.cache.scored_pairs(profile_pairs(self.store, self.profile), self.attributes)
        return self.cache.rewards(pairs, self.attributes, self.reward) if pairs else None


def write_candidates(
    decoder: DriftDecoder, attributes: AttributeSet, prompt: str, attribute: str, *, decoding: Decoding, max_tokens: int, seed: int
) -> Candidates:
    """The LLM's answer steered toward the attribute, then away from it (same seed)."""
    index = attributes.names.index(attribute)
    texts = []
    for sign in (1.0, -1.0):
        steering = Steering(attributes.base, (attribute,), (attributes.prompts[index],), np.array([sign]))
        answer = Answer()
        sampler = Sampler(SamplerSettings(seed=seed))
        for _ in decoder.stream([Message("user", prompt)], steering, decoding=decoding, sampler=sampler, max_tokens=max_tokens, answer=answer):
            pass
        texts.append(whole_sentences(answer.text.strip()) if answer.stop == "length" else answer.text.strip())
    return Candidates(prompt, attribute, (texts[0], texts[1]))


# A sentence ends at . ! ? or … (then maybe a closing quote, bracket or **) before a space;
# "2." starting a list item does not end one.
_SENTENCE_END = re.compile(r"(?<!\b\d)[.!?…][\"')\]*]*(?=\s)")


def whole_sentences(text: str) -> str:
    """An answer cut by the token limit, back to its last whole sentence.

    The person reads no half sentence, and the score, which counts the token that ends a
    whole answer, matches what was read. Kept as is when that would drop most of it.
    """
    ends = [m.end() for m in _SENTENCE_END.finditer(text + " ")]
    return text[: ends[-1]] if ends and ends[-1] >= len(text) // 3 else text


def score_candidates(cache: RewardCache, attributes: AttributeSet, candidates: Candidates) -> None:
    """Both answers under every attribute prompt, into the cache: the slow part."""
    cache.fill_missing([candidates.as_pair_text()], attributes)


class RateWorker:
    """Writes and scores candidates on one background thread, while the person reads.

    llama.cpp contexts and SQLite connections stay on the thread that made them, so the
    worker opens its own store, score cache and decoder there.
    """

    def __init__(self, models, attributes: AttributeSet, context_settings, *, cap: int, decoding: Decoding, max_tokens: int):
        from concurrent.futures import ThreadPoolExecutor

        self.attributes = attributes
        self.decoding = decoding
        self.max_tokens = max_tokens
        self._local: dict = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="rate", initializer=self._start, initargs=(models, context_settings, cap))

    def _start(self, models, context_settings, cap: int) -> None:
        store = Store.open()
        self._local.update(
            store=store,
            cache=RewardCache(store, models.slm, context_settings, cap),
            decoder=DriftDecoder(models, 1, context_settings),
        )

    def write(self, prompt: str, attribute: str, seed: int):
        return self._pool.submit(
            lambda: write_candidates(self._local["decoder"], self.attributes, prompt, attribute, decoding=self.decoding, max_tokens=self.max_tokens, seed=seed)
        )

    def score(self, candidates: Candidates):
        return self._pool.submit(lambda: score_candidates(self._local["cache"], self.attributes, candidates))

    def close(self) -> None:
        self._pool.submit(lambda: self._local["store"].close() if "store" in self._local else None)
        self._pool.shutdown(wait=True, cancel_futures=True)


def moved(before: Fit | None, after: Fit | None, names: list[str], top: int = 5) -> list[tuple[str, float, float]]:
    """The attributes whose weight changed most: (name, old, new)."""
    if after is None:
        return []
    old = before.weights if before is not None else np.zeros_like(after.weights)
    order = np.argsort(-np.abs(after.weights - old))[:top]
    return [(names[i], float(old[i]), float(after.weights[i])) for i in order]


def prompt_cycle(prompts: list[str], seed: int):
    """Prompts in a shuffled order, reshuffled after each pass."""
    rng = random.Random(seed)
    while True:
        order = prompts[:]
        rng.shuffle(order)
        yield from order
