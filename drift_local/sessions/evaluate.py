"""k-shot preference accuracy on pairs held out from the fit: on new prompts, by default.

`prompt` splits (the default) keep every prompt's pairs on one side: about half the prompts
train, the rest test, and k training pairs are drawn from the training prompts. No answer is
then in both a training and a test pair, which is how a profile is used: on new prompts.
`random` splits draw k pairs from all of them and test on the rest, as the paper's figures
do; with several answers per prompt the same answers sit on both sides, which flatters the
more flexible fits.

Methods: fit's default and every other fit method (`drift.approx.FIT_METHODS`), the paper's
closed form on per-token (mean) rewards, a length-only baseline fitted on the training
pairs, and chance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from drift_local.drift.approx import DEFAULT_METHOD, FIT_METHODS, Pairs, accuracy, fit_length_baseline, length_accuracy
from drift_local.errors import DriftError

SPLITS = ("prompt", "random")
LENGTH_ONLY = "length only"
PAPER_MEAN = "paper (mean)"
METHODS = (DEFAULT_METHOD, *(m for m in FIT_METHODS if m != DEFAULT_METHOD), PAPER_MEAN, LENGTH_ONLY, "chance")
MIN_TEST_SHARE = 0.25  # a split keeps at least this share of the prompts for testing


@dataclass
class Evaluation:
    n_pairs: int
    n_prompts: int
    split: str
    shots: list[int]
    seeds: int
    scores: dict[str, dict[int, list[float]]] = field(default_factory=dict)  # method -> k -> accuracy per split
    skipped_shots: list[int] = field(default_factory=list)

    def mean_std(self, method: str, k: int) -> tuple[float, float]:
        values = np.array(self.scores[method][k])
        return float(values.mean()), float(values.std())

    def beats_length(self, method: str, k: int) -> int:
        """On how many splits `method` was more accurate than the length-only baseline."""
        return int(sum(a > b for a, b in zip(self.scores[method][k], self.scores[LENGTH_ONLY][k])))

    def n_splits(self, k: int) -> int:
        return len(self.scores[LENGTH_ONLY][k])


def evaluate(pairs: dict[str, Pairs], shots: Sequence[int], seeds: int, split: str = "prompt") -> Evaluation:
    """`pairs` holds the same pairs under 'sum' and 'mean' reward modes."""
    data = pairs["sum"]
    plan = plan_splits(data.groups, shots, seeds, split)
    result = Evaluation(len(data), len(np.unique(data.groups)), split, [], seeds, skipped_shots=plan.skipped)
    for k, splits in plan.splits.items():
        result.shots.append(k)
        for method in METHODS:
            result.scores.setdefault(method, {})[k] = [_score(method, pairs, train, test) for train, test in splits]
    return result


@dataclass
class SplitPlan:
    splits: dict[int, list[tuple[np.ndarray, np.ndarray]]]  # k -> (train, test) index arrays per seed
    skipped: list[int]  # shot counts with no split: too few pairs


def plan_splits(groups: np.ndarray, shots: Sequence[int], seeds: int, split: str = "prompt") -> SplitPlan:
    """The train/test splits for each shot count; they depend only on the pairs' prompts, so
    impossible requests are refused before any scoring."""
    if split not in SPLITS:
        raise DriftError(f"unknown split {split!r}", "use prompt (new prompts, the default) or random")
    splitter = _prompt_split if split == "prompt" else _random_split
    plan = SplitPlan({}, [])
    for k in sorted(set(shots)):
        splits = [s for s in (splitter(groups, k, np.random.default_rng(seed)) for seed in range(seeds)) if s is not None]
        if splits:
            plan.splits[k] = splits
        else:
            plan.skipped.append(k)
    if not plan.splits:
        hint = "use --shots smaller than the number of pairs" + (" in about half the prompts" if split == "prompt" else "")
        raise DriftError(f"no shot count leaves pairs to test on ({len(groups)} pairs, {len(np.unique(groups))} prompts)", hint)
    return plan


def prompt_groups(pairs) -> np.ndarray:
    """Each pair's prompt as a group id, in first-seen order (as RewardCache.rewards numbers them)."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(p.prompt, len(ids)) for p in pairs], dtype=int)


def evaluate_file(
    settings, data, *, user: str | None = None, skip_bad: bool = False, slm: str | None = None,
    shots: Sequence[int], seeds: int, split: str, progress=None,
) -> Evaluation:
    """Read a file of pairs, check the shot counts can be met, score (cached), evaluate."""
    from drift_local.attributes import paper_attributes
    from drift_local.store.importers import read_pairs
    from drift_local.store.store import Store
    from drift_local.sessions.rewards import RewardCache
    from drift_local.sessions.runtime import open_slm

    pairs = [p for p in read_pairs(data, user=user, skip_bad=skip_bad).pairs if not p.tie]
    plan_splits(prompt_groups(pairs), shots, seeds, split)
    model = open_slm(settings, slm)
    with Store.open() as store:
        attributes = paper_attributes()
        cache = RewardCache(store, model, settings.context(), settings.max_response_tokens)
        cache.fill_missing(pairs, attributes, progress)
        pairs = cache.scored_pairs(pairs, attributes)  # those that fit the scoring context
        rewards = {mode: cache.rewards(pairs, attributes, mode) for mode in ("sum", "mean")}
    return evaluate(rewards, shots, seeds, split)


def _prompt_split(groups: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """k pairs from about half the prompts (more if they hold fewer than k); tests on the rest."""
    prompts = rng.permutation(np.unique(groups))
    most_for_training = len(prompts) - max(1, int(np.ceil(MIN_TEST_SHARE * len(prompts))))
    n_train = min(max(1, len(prompts) // 2), most_for_training)
    while n_train < most_for_training and np.isin(groups, prompts[:n_train]).sum() < k:
        n_train += 1
    in_train = np.isin(groups, prompts[:n_train])
    candidates = np.flatnonzero(in_train)
    if n_train < 1 or len(candidates) < k:
        return None
    return np.sort(rng.choice(candidates, k, replace=False)), np.flatnonzero(~in_train)


def _random_split(groups: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    if not 0 < k < len(groups):
        return None
    order = rng.permutation(len(groups))
    return np.sort(order[:k]), order[k:]


def _score(method: str, pairs: dict[str, Pairs], train: np.ndarray, test: np.ndarray) -> float:
    data = pairs["sum"]
    if method == "chance":
        return 0.5
    if method == LENGTH_ONLY:
        sign = fit_length_baseline(data.win_tokens[train], data.lose_tokens[train])
        return length_accuracy(sign, data.win_tokens[test], data.lose_tokens[test])
    if method == PAPER_MEAN:
        return _safe(lambda: accuracy(FIT_METHODS["paper"](pairs["mean"].subset(train)), pairs["mean"].subset(test)))
    return _safe(lambda: accuracy(FIT_METHODS[method](data.subset(train)), data.subset(test)))


def _safe(train: Callable[[], float]) -> float:
    """A degenerate training sample (e.g. W−L = 0) predicts nothing: chance."""
    try:
        return train()
    except DriftError:
        return 0.5
