"""Is a steered answer still text? The guard every quality figure is reported with.

A rule such as "fewer words" would call junk (`UDEEEEEEEE…`) a win, so a steered answer only
counts when it passes two checks:

- likelihood: its mean per-token log-probability under the plain LLM is no lower than
  what the LLM's own plain answers reach (the caller passes that threshold: a low
  percentile of plain answers to the same prompts);
- no degeneration: no long run of one character, few symbols that are neither letters,
  digits, punctuation nor spaces, and no collapse of the vocabulary into a few words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_CHARACTER_RUN = 8  # "!!!!!!!!!" or "EEEEEEEE"; a markdown rule of dashes is excluded
MAX_SYMBOL_SHARE = 0.05  # characters that are neither letters, digits, punctuation nor spaces
MIN_DISTINCT_WORDS = 0.3  # distinct words / words, for answers of MIN_WORDS_FOR_DISTINCT or more
MIN_WORDS_FOR_DISTINCT = 30
_RUN = re.compile(r"([^\s\-=_*#.])\1{%d,}" % (MAX_CHARACTER_RUN - 1))


@dataclass(frozen=True)
class Fluency:
    mean_logprob: float  # nats per token under the plain LLM
    degeneration: str | None  # why the text is degenerate, or None

    def fluent(self, threshold: float) -> bool:
        return self.degeneration is None and self.mean_logprob >= threshold


def degeneration(text: str) -> str | None:
    """Why `text` is not ordinary text, or None when it is."""
    if _RUN.search(text):
        return "a long run of one character"
    visible = [c for c in text if not c.isspace()]
    if visible:
        symbols = sum(1 for c in visible if unicodedata.category(c)[0] not in "LNP")
        if symbols / len(visible) > MAX_SYMBOL_SHARE:
            return "many symbols that are not letters, digits or punctuation"
    words = re.findall(r"\w+", text.lower())
    if len(words) >= MIN_WORDS_FOR_DISTINCT and len(set(words)) / len(words) < MIN_DISTINCT_WORDS:
        return "a few words repeated over and over"
    return None
