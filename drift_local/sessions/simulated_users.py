"""Programmatic users: a hidden rule over an answer's text decides which of two answers wins.

They stand in for people where people cannot be asked: `rate --non-interactive
--choose-by NAME`, the simulated-user data builder, and the steering benchmark. Each rule
scores a text (higher wins; equal scores are a tie). Apart from the two length users, rules
count per 100 words: a taste for exclamation marks is not a taste for long answers that
happen to hold more of them, so a length-only guess cannot pass for style. `attribute`
names the paper attribute a person would expect to see rise for that taste, where one
exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

_CONTRACTION = re.compile(r"\b\w+['’](?:s|t|re|ve|ll|d|m)\b", re.IGNORECASE)
# A bullet or numbered item at the start of a line.
_LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S", re.MULTILINE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*%?")
_HEDGE = re.compile(
    r"\b(?:might|may|perhaps|possibly|probably|likely|maybe|seems?|generally|usually|often|typically|somewhat|could)\b",
    re.IGNORECASE,
)
# "I" is matched case-sensitively: "i" is rarely the pronoun in model text.
_FIRST_PERSON = re.compile(r"\bI\b|\b(?:me|my|mine|myself)\b|\bI['’](?:m|ve|d|ll)\b")


@dataclass(frozen=True)
class SimulatedUser:
    name: str
    description: str
    score: Callable[[str], float]
    attribute: str | None  # the attribute that should rise, if any

    def choose(self, first: str, second: str) -> str:
        """'first', 'second' or 'tie'."""
        a, b = self.score(first), self.score(second)
        return "first" if a > b else "second" if b > a else "tie"


def _words(text: str) -> int:
    return len(text.split())


def _per_100_words(count: Callable[[str], int]) -> Callable[[str], float]:
    return lambda text: 100.0 * count(text) / max(1, _words(text))


SIMULATED_USERS: dict[str, SimulatedUser] = {
    user.name: user
    for user in (
        SimulatedUser("fewer-words", "prefers the answer with fewer words", lambda t: -_words(t), "concise"),
        SimulatedUser("more-words", "prefers the answer with more words", _words, None),
        SimulatedUser("no-contractions", "prefers fewer contractions (don't, it's)", _per_100_words(lambda t: -len(_CONTRACTION.findall(t))), "formal"),
        SimulatedUser("exclamations", "prefers more exclamation marks", _per_100_words(lambda t: t.count("!")), "exclamatory"),
        SimulatedUser("questions", "prefers more questions back to the reader", _per_100_words(lambda t: t.count("?")), None),
        SimulatedUser("anecdotes", "prefers first-person words (I, me, my): personal anecdotes", _per_100_words(lambda t: len(_FIRST_PERSON.findall(t))), "storyteller"),
        SimulatedUser("bullets", "prefers more bullet or numbered list items", _per_100_words(lambda t: len(_LIST_ITEM.findall(t))), None),
        SimulatedUser("numbers", "prefers more numbers and figures", _per_100_words(lambda t: len(_NUMBER.findall(t))), None),
        SimulatedUser("hedging", "prefers more hedging words (might, perhaps, usually)", _per_100_words(lambda t: len(_HEDGE.findall(t))), None),
    )
}


# The defaults (fit method, β, k, plausibility) were chosen on these users, on the dev prompts;
# the README reports every user, on other prompts. Benchmarks mark them.
DEV_USERS = ("more-words", "exclamations", "bullets", "hedging")


def decided_pairs(candidates: list[dict], user: SimulatedUser) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) for every two distinct answers to one prompt that `user` decides.

    `candidates`: [{"prompt": ..., "answers": [{"text": ...}, ...]}, ...], as the simulated-user
    data builder writes them; ties are left out.
    """
    pairs = []
    for item in candidates:
        texts = list(dict.fromkeys(a["text"] for a in item["answers"] if a["text"]))
        for i, first in enumerate(texts):
            for second in texts[i + 1 :]:
                choice = user.choose(first, second)
                if choice != "tie":
                    pairs.append((item["prompt"], *((first, second) if choice == "first" else (second, first))))
    return pairs


def simulated_user(name: str) -> SimulatedUser:
    from drift_local.errors import DriftError

    if name not in SIMULATED_USERS:
        raise DriftError(f"unknown simulated user {name!r}", f"use one of: {', '.join(SIMULATED_USERS)}")
    return SIMULATED_USERS[name]
