"""Style read off the answer's text: a taste the sLM's attribute rewards cannot carry.

A small model's log-probabilities barely move for "use no contractions" or "add
exclamation marks" (measured: README, "How well it works"), yet such surface style is a
large part of what people prefer (LMSYS's style control fits Bradley–Terry with length
and markdown counts for the same reason). Each feature here is how often something occurs
per 100 answer tokens, counted in the text; the fit learns a reward per unit, and decoding
turns that reward into a logit bias on the tokens that write it (`token_classes`), the way
a taste for length acts through the end-of-answer token. Pure Python and numpy, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

RATE_UNIT = 100.0  # features count occurrences per this many answer tokens

# Hedges after Hyland's (2005) list of epistemic hedges, one-word forms only.
HEDGES = frozenset(
    "almost apparently appear appears approximately arguably assume broadly could essentially fairly "
    "frequently generally largely likely mainly may maybe might mostly often perhaps plausibly possible possibly "
    "presumably probably quite rather relatively roughly seem seems seemingly sometimes somewhat suggest suggests "
    "tend tends typically unlikely usually".split()
)
FIRST_PERSON = frozenset(("I", "me", "my", "mine", "myself", "Me", "My", "Mine", "Myself"))
_APOSTROPHES = "'’"
# Words that only ever come before "n't": a tokenizer that writes "don't" as "don" "'t" has
# committed to the contraction at the stem, where "do not" is still one choice among others;
# after it, "'t" is often the only plausible token, so a cost on "'t" alone cannot act.
CONTRACTION_STEMS = frozenset(
    "don doesn didn isn aren wasn weren haven hasn hadn wouldn shouldn couldn mustn needn".split()
)
# A bullet, or a numbered item's number: tokenizers that split "1." write its digit alone first.
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d{1,2}[.)]?)$")


@dataclass(frozen=True)
class StyleFeature:
    name: str
    more: str  # what a positive weight means, as `profile show` says it
    count: Callable[[str], int]  # occurrences in an answer's text
    writes: Callable[[str], bool] | None = None  # whether a token's text writes one (at any position)
    opens_line: Callable[[str], bool] | None = None  # a token that writes one only as the first thing on a line
    opens_sentence: Callable[[str], bool] | None = None  # a sentence opened by this token leads to one ("What" … "?")
    breaks_line: bool = False  # after a sentence, a line break leads to one: a list's next item goes on its own line
    needs_body: bool = False  # written only after a sentence has a few words: a lone "What?" is no question
    continues: Callable[[str], bool] | None = None  # after this text its tokens extend the last occurrence, adding none


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’]+", text)


def _ends_with_stem(text: str) -> bool:
    last = re.search(r"(\w+)\Z", text)
    return bool(last) and last.group(1).lower() in CONTRACTION_STEMS


# A sentence opened by one of these ends with "?" in SmolLM2's answers (19 of 21 in the dev
# candidates; "When" and "Where" open clauses as often, so they are left out).
QUESTION_OPENERS = frozenset(
    "What Why How Is Are Do Does Did Can Could Would Should Will Have Has Ever Who Which Isn't Aren't Don't".split()
)


STYLE_FEATURES: tuple[StyleFeature, ...] = (
    StyleFeature("exclamations", "more exclamation marks", lambda t: t.count("!"), lambda p: "!" in p),
    StyleFeature(
        "questions", "more questions", lambda t: t.count("?"), lambda p: "?" in p,
        opens_sentence=lambda p: p.strip() in QUESTION_OPENERS, needs_body=True,
    ),
    StyleFeature(
        "list items", "more bulleted or numbered list items",
        lambda t: len(re.findall(r"^[ \t]*(?:[-*•]|\d{1,2}[.)])[ \t]+\S", t, re.MULTILINE)),
        opens_line=lambda p: bool(_LIST_MARKER.match(p.strip(" \t"))),
        breaks_line=True,
    ),
    StyleFeature(
        "numbers", "more numbers", lambda t: len(re.findall(r"\d+", t)), lambda p: any(c.isdigit() for c in p),
        continues=lambda t: t[-1:].isdigit(),  # another digit makes the number longer, not another number
    ),
    StyleFeature(
        "contractions", "more contractions (don't, it's)",
        lambda t: len(re.findall(r"\w[" + _APOSTROPHES + r"]\w", t)),
        lambda p: any(a in p for a in _APOSTROPHES) or p.strip().lower() in CONTRACTION_STEMS,
        continues=_ends_with_stem,  # the "'t" after "don" completes the one already counted
    ),
    StyleFeature(
        "first person", "more first-person words (I, me, my)",
        lambda t: sum(w in FIRST_PERSON or re.split("[" + _APOSTROPHES + "]", w)[0] == "I" for w in _words(t)), lambda p: p.strip() in FIRST_PERSON,
    ),
    StyleFeature(
        "hedges", "more hedging words (perhaps, usually)",
        lambda t: sum(w.lower() in HEDGES for w in _words(t)), lambda p: p.strip().lower() in HEDGES,
    ),
)
STYLE_NAMES = tuple(f.name for f in STYLE_FEATURES)
_NEEDS_BODY = [j for j, f in enumerate(STYLE_FEATURES) if f.needs_body]
_BREAKS_LINE = [j for j, f in enumerate(STYLE_FEATURES) if f.breaks_line]


def describe_style(weights: dict[str, float] | None) -> str:
    """'fewer exclamation marks -0.52, more list items +0.20': the non-zero weights, largest first."""
    meaning = {f.name: f.more for f in STYLE_FEATURES}
    shown = sorted(((n, w) for n, w in (weights or {}).items() if w and n in meaning), key=lambda item: -abs(item[1]))
    return ", ".join(f"{meaning[n] if w > 0 else meaning[n].replace('more ', 'fewer ', 1)} {w:+.2f}" for n, w in shown)


def style_rates(texts: Sequence[str], n_tokens: Sequence[float]) -> np.ndarray:
    """(n, S): each feature's occurrences per RATE_UNIT answer tokens (0 for an empty answer)."""
    counts = np.array([[f.count(text) for f in STYLE_FEATURES] for text in texts], dtype=np.float64).reshape(len(texts), len(STYLE_FEATURES))
    tokens = np.asarray(n_tokens, dtype=np.float64).reshape(len(texts), 1)
    return np.where(tokens > 0, RATE_UNIT * counts / np.where(tokens > 0, tokens, 1.0), 0.0)


_SENTENCE_END = re.compile(r"[.!?][)\"'”’*]*$")
_NOT_AN_END = re.compile(r"(?:^[ \t]*\d{1,2}|(?:^|\s)(?:[A-Za-z]|e\.g|i\.e|vs|Mr|Mrs|Dr|St))\.\Z", re.MULTILINE)  # "1." "e.g." "Dr."


def ends_sentence(text: str) -> bool:
    """Whether the text ends a finished sentence ("… Paris." or "… Paris.\n\n"), not a list
    number, an initial or an abbreviation: where an answer may stop, or a new sentence start."""
    last = text.rstrip()
    return bool(_SENTENCE_END.search(last)) and not _NOT_AN_END.search(last)


# A question's body: "?" after fewer words than this closes no question ("What?").
BODY_WORDS = 3
_SENTENCE_BREAK = re.compile(r"[.!?:][)\"'”’*]*\s+|\n")


@dataclass(frozen=True)
class Position:
    """Where the next token falls in the answer's text, as far as the style features care."""

    line_start: bool
    sentence_start: bool
    continuing: tuple[bool, ...]  # per feature: its next token would only extend the last occurrence
    opening: bool  # nothing written yet
    has_body: bool  # the sentence under way has BODY_WORDS words or more


def position(text: str) -> Position:
    written = text.rstrip(" \t")
    return Position(
        line_start=not written or written.endswith("\n"),
        sentence_start=not text.strip() or ends_sentence(text),
        continuing=tuple(bool(f.continues and f.continues(text)) for f in STYLE_FEATURES),
        opening=not text.strip(),
        has_body=len(_words(_SENTENCE_BREAK.split(text)[-1])) >= BODY_WORDS,
    )


@dataclass(frozen=True)
class TokenClasses:
    """Which tokens write each feature, anywhere or at a line's start, and which open a
    sentence that leads to one."""

    anywhere: np.ndarray  # (S, V) bool
    line_start: np.ndarray  # (S, V) bool
    sentence_start: np.ndarray  # (S, V) bool
    line_break: np.ndarray  # (V,) bool: tokens of nothing but line breaks

    def writers(self, at: Position) -> np.ndarray:
        """(S, V) bool: the tokens that would add an occurrence of each feature here."""
        active = self.anywhere.copy()
        if at.line_start:
            active |= self.line_start
        active[np.asarray(at.continuing, dtype=bool)] = False
        return active

    def rewarded(self, at: Position) -> np.ndarray:
        """(S, V) bool: the writers a liked feature rewards here; a "?" needs a question before it."""
        active = self.writers(at)
        if not at.has_body:
            active[_NEEDS_BODY] = False
        return active

    def leads(self, at: Position) -> np.ndarray:
        """(S, V) bool: the rewarded writers, and the tokens that open a sentence leading to one:
        what may bring a liked feature's first occurrence within reach."""
        return self.rewarded(at) | (self.sentence_start if at.sentence_start else False)


def token_classes(pieces: Sequence[str]) -> TokenClasses:
    """Each token's text (`pieces[i]`, as the tokenizer writes token i alone), classified."""
    shape = (len(STYLE_FEATURES), len(pieces))
    anywhere, line_start, sentence_start = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
    for j, feature in enumerate(STYLE_FEATURES):
        for i, piece in enumerate(pieces):
            if feature.writes and feature.writes(piece):
                anywhere[j, i] = True
            if feature.opens_line:
                # A token that starts a new line itself ("\n-") writes a marker wherever it falls.
                head, newline, tail = piece.rpartition("\n")
                if newline and feature.opens_line(tail):
                    anywhere[j, i] = True
                elif not newline and feature.opens_line(piece):
                    line_start[j, i] = True
            if feature.opens_sentence and feature.opens_sentence(piece):
                sentence_start[j, i] = True
    line_break = np.array(["\n" in piece and not piece.strip() for piece in pieces], dtype=bool)
    return TokenClasses(anywhere, line_start, sentence_start, line_break)


def at_ceiling(weights: np.ndarray, ceilings: np.ndarray, counts: Sequence[int], n_tokens: int) -> tuple[int, ...]:
    """The liked features whose rate in the answer so far has reached its ceiling (the highest
    rate among the fitted answers; `ceilings` may be empty: none).

    A reward fitted as linear in a rate only speaks for rates the fitted answers had. Beyond
    them, rewarding each further "1" or "!" makes the best answer one made of nothing else
    (digit runs such as "1.1.1.2:1"), so the reward stops there. A first occurrence always
    counts; disliked features are never capped.
    """
    if not np.size(ceilings):
        return ()
    rates = RATE_UNIT * np.asarray(counts, dtype=np.float64) / max(n_tokens, 1)
    return tuple(int(j) for j in np.flatnonzero((np.asarray(weights) > 0) & (np.asarray(counts) > 0) & (rates >= ceilings)))


def style_bias(
    weights: np.ndarray, classes: TokenClasses, answer_tokens: float, at: Position, missing: Sequence[int] = ()
) -> np.ndarray:
    """The logit bias (V,) that a reward of `weights[j]` per unit of feature j puts on the tokens
    that would write one more here.

    One more occurrence in an answer of about `answer_tokens` tokens raises its rate by
    RATE_UNIT / answer_tokens, so that is the reward of writing the token now. For the liked
    features the answer does not hold yet (`missing`), a token that opens a sentence leading
    to one ("What" … "?") earns that reward too, after the answer's first sentence: a question
    is planned from its first word, and "?" alone comes too late to start one. Only the first
    occurrence is led to, so a lead cannot loop ("What? What? …"). A liked list item is led
    to by a line break after a finished sentence, every time until its ceiling: SmolLM2
    otherwise writes a list's items inline ("1. Clean … 2. Remove …"), which holds one item.
    """
    per_token = np.asarray(weights, dtype=np.float64) * RATE_UNIT / max(float(answer_tokens), 1.0)
    writers = np.where((per_token > 0)[:, None], classes.rewarded(at), classes.writers(at))  # a disliked "?" costs anywhere
    bias = per_token @ writers
    if at.sentence_start and not at.opening and len(missing):
        rows = np.asarray(missing, dtype=np.int64)
        rows = rows[per_token[rows] > 0]
        bias += per_token[rows] @ (classes.sentence_start[rows] & ~writers[rows])
    if at.sentence_start and not at.line_start and not at.opening:
        bias += max(0.0, float(per_token[_BREAKS_LINE].sum())) * classes.line_break
    with np.errstate(over="ignore"):  # an absurd weight becomes inf, which drift_logits reports
        return bias.astype(np.float32)
