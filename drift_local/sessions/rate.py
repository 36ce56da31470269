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
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from drift_local.attributes import AttributeSet
from drift_local.drift.approx import DEFAULT_METHOD, Fit, bootstrap_weights, fit_pairs
from drift_local.drift.sampling import Sampler, SamplerSettings
from drift_local.drift.steering import Decoding
from drift_local.engine.template import Message
from drift_local.errors import DriftError
from drift_local.store.store import Pair, Profile, Store
from drift_local.sessions.background import Cancelled, Worker
from drift_local.sessions.decoder import Answer, DriftDecoder, Steering
from drift_local.sessions.fit import profile_pairs, save_fit
from drift_local.sessions.rewards import RewardCache

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

    def pair(self, choice: str) -> Pair:
        first, second = self.texts
        if choice == "second":
            first, second = second, first
        return Pair(self.prompt, first, second, tie=choice == "tie", source=f"rate:{self.attribute}")


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
        self.record(candidates, choice)
        return self.refit() if choice != "skip" else self.fit

    def record(self, candidates: Candidates, choice: str) -> None:
        """Store the choice durably now; refit once the candidates are scored."""
        if choice != "skip":
            [pair_id] = self.store.add_pairs(self.profile, [candidates.pair(choice)])
            self.recorded.append(pair_id)

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
    decoder: DriftDecoder, attributes: AttributeSet, prompt: str, attribute: str, *, decoding: Decoding, max_tokens: int, seed: int,
    stop: threading.Event | None = None, partial: list[str] | None = None,
) -> Candidates:
    """The LLM's answer steered toward the attribute, then away from it (same seed).
    `partial` (two texts) grows token by token, for a screen to show them as they come."""
    index = attributes.names.index(attribute)
    texts = []
    for i, sign in enumerate((1.0, -1.0)):
        steering = Steering(attributes.base, (attribute,), (attributes.prompts[index],), np.array([sign]))
        answer = Answer()
        sampler = Sampler(SamplerSettings(seed=seed))
        for step in decoder.stream([Message("user", prompt)], steering, decoding=decoding, sampler=sampler, max_tokens=max_tokens, answer=answer):
            if stop is not None and stop.is_set():
                raise Cancelled
            if partial is not None:
                partial[i] += step.text
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


def score_candidates(cache: RewardCache, attributes: AttributeSet, candidates: Candidates, stop: threading.Event | None = None) -> None:
    """Both answers under every attribute prompt, into the cache: the slow part. With `stop`,
    it ends after the wave in progress (finished chunks are committed, the rest is not)."""

    def check(_tokens: int) -> None:
        if stop is not None and stop.is_set():
            raise Cancelled

    cache.fill_missing([candidates.pair("first")], attributes, lambda _total: check)


class RateWorker:
    """Writes and scores candidates on one background thread (its own store, score cache and
    decoder), while the person reads."""

    def __init__(self, models, attributes: AttributeSet, context_settings, *, cap: int, decoding: Decoding, max_tokens: int):
        self.attributes = attributes
        self.decoding = decoding
        self.max_tokens = max_tokens

        def open_resources():
            store = Store.open()
            try:
                return RewardCache(store, models.slm, context_settings, cap), DriftDecoder(models, 1, context_settings)
            except BaseException:
                store.close()
                raise

        self._worker = Worker("rate", open_resources, lambda resources: resources[0].store.close())

    def write(self, prompt: str, attribute: str, seed: int) -> Future:
        """A future Candidates; its `prompt` and `partial` texts can be shown while it is written."""
        partial = ["", ""]
        future = self._worker.submit(lambda resources: write_candidates(
            resources[1], self.attributes, prompt, attribute, decoding=self.decoding, max_tokens=self.max_tokens, seed=seed,
            stop=self._worker.stopping, partial=partial,
        ))
        future.prompt, future.partial = prompt, partial
        return future

    def score(self, candidates: Candidates) -> Future:
        return self._worker.submit(lambda resources: score_candidates(resources[0], self.attributes, candidates, self._worker.stopping))

    def close(self, timeout: float = 1.0) -> bool:
        """Stop the work in progress and end the thread; False if it is still inside one
        llama.cpp call after `timeout` seconds (the process may exit without it)."""
        return self._worker.close(timeout)


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


class RateSession:
    """The rounds of one `rate` run: which pair to show, choices stored at once, undo that
    shows the undone pair again. The UI decides when to wait for the worker's futures.

    While the person reads one pair, it is scored and the next pair is written.
    """

    def __init__(self, rater: Rater, worker: RateWorker, prompts, n: int):
        self.rater, self.worker, self.prompts, self.n = rater, worker, prompts, n
        self.round = 0
        self.moved: list[tuple[str, float, float]] = []
        self._chosen: list[Candidates] = []  # the candidates behind each pair in rater.recorded
        self._again: list[Candidates] = []  # pairs to show before new ones (after an undo); last first
        self._pending = self._write(next(self.prompts))

    def _write(self, prompt: str) -> Future:
        attribute, seed = self.rater.ask_about()
        return self.worker.write(prompt, attribute, seed)

    def next_candidates(self) -> Future:
        """The pair to show next: one undone, else the one written in the background."""
        if self._again:
            done: Future = Future()
            done.set_result(self._again.pop())
            return done
        pending = self._pending
        self._pending = None
        return pending

    def shown(self, candidates: Candidates) -> Future:
        """The pair is on screen: score it (cached if seen before) and write the one after."""
        scoring = self.worker.score(candidates)
        if self._pending is None:
            self._pending = self._write(next(self.prompts))
        return scoring

    def write_now(self, prompt: str) -> Future:
        """A pair for the person's own prompt (written after the one already queued)."""
        attribute, seed = self.rater.ask_about()
        return self.worker.write(prompt, attribute, seed)

    def record(self, candidates: Candidates, choice: str) -> None:
        """Store the choice durably at once (before its scores are ready)."""
        self.rater.record(candidates, choice)
        if choice != "skip":
            self._chosen.append(candidates)

    def refit(self, choice: str) -> None:
        """After the candidates are scored: refit and note what moved."""
        if choice == "skip":
            self.moved = []
            return
        before = self.rater.fit
        after = self.rater.refit()
        self.moved = moved(before, after, self.rater.attributes.names)
        self.round += 1

    def choose(self, candidates: Candidates, scoring: Future, choice: str) -> None:
        """record, wait for the scores, refit: the scripted path."""
        self.record(candidates, choice)
        if choice != "skip":
            scoring.result()
        self.refit(choice)

    def undo(self, showing: Candidates | None) -> Candidates:
        """Delete the last stored choice and refit; its pair is shown again next, then `showing`."""
        before = self.rater.fit
        after = self.rater.undo()
        undone = self._chosen.pop()
        self.moved = moved(before, after, self.rater.attributes.names)
        self.round -= 1
        if showing is not None:
            self._again.append(showing)
        self._again.append(undone)
        return undone

    def pairs_held(self) -> int:
        return self.rater.store.count_pairs(self.rater.profile)

    def close(self) -> bool:
        """End the background work and the store; False when the worker had to be abandoned
        inside a llama.cpp call (the process should then exit without waiting for it)."""
        stopped = self.worker.close()
        self.rater.store.close()
        return stopped


def open_rating(
    settings, *, profile: str, llm: str | None, slm: str | None, prompts: list[str], strategy: str, n: int,
    max_tokens: int, progress=None,
) -> RateSession:
    """Load the models, create the profile if new, score its earlier pairs (cached ones are
    free), fit, and start the background worker."""
    from drift_local.sessions.profiles import existing_or_new
    from drift_local.sessions.runtime import open_models

    models = open_models(settings, llm, slm)
    store = Store.open()
    try:
        target = existing_or_new(store, profile)
        attributes = store.active_attributes(target)
        cache = RewardCache(store, models.slm, settings.context(), settings.max_response_tokens)
        seed = settings.seed if settings.seed is not None else 0
        rater = Rater(store, target, attributes, cache, strategy=strategy, method=settings.method, reward=settings.reward, seed=seed)
        cache.fill_missing(profile_pairs(store, target), attributes, progress)
        rater.refit()
        worker = RateWorker(models, attributes, settings.context(), cap=settings.max_response_tokens, decoding=settings.decoding(), max_tokens=max_tokens)
        return RateSession(rater, worker, prompt_cycle(prompts, seed), n)
    except BaseException:
        store.close()
        raise
