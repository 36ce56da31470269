"""Drift Approximation for a stored profile: score what is missing, fit p, keep the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from drift_local.config import Settings
from drift_local.drift.approx import DEFAULT_METHOD, Fit, Pairs, fit_pairs, sign_stability, top_k
from drift_local.drift.style import STYLE_NAMES
from drift_local.engine.context import ContextSettings
from drift_local.engine.model import Model
from drift_local.errors import DriftError, Interrupted
from drift_local.store.store import FitRecord, Profile, Store
from drift_local.sessions.decoder import Steering
from drift_local.sessions.rewards import RewardCache
from drift_local.store.store import Pair

# start(total_tokens) -> advance(n_tokens): how a UI shows scoring progress.
ProgressStarter = Callable[[int], Callable[[int], None]]

SIGN_RESAMPLES = 100  # bootstrap refits behind each weight's sign stability
STABLE_SIGN = 0.9  # a sign kept in at least this share of refits is shown as signal


@dataclass
class FitOutcome:
    record: FitRecord
    fit: Fit
    scored_tokens: int  # 0 when every reward was cached
    notice: str | None = None  # what the user should know: pairs left out
    ties: int = 0  # pairs the fit leaves out: neither answer preferred


def profile_pairs(store: Store, profile: Profile) -> list[Pair]:
    return store.list_pairs(profile, include_ties=False)


def save_fit(
    store: Store, profile: Profile, slm: Model, pairs: Pairs, fit: Fit, names: list[str], reward: str, n_left_out: int = 0
) -> FitRecord:
    """Store a fit with how stable each weight's sign is; returns the stored record.

    `n_left_out`: pairs too long to score, left out (is_stale counts them as seen).
    """
    stability = sign_stability(pairs, fit, SIGN_RESAMPLES, np.random.default_rng(0))
    record_id = store.save_fit(
        profile,
        model_id=slm.fingerprint,
        method=fit.method,
        reward=reward,
        n_pairs=fit.n_pairs,
        names=names,
        weights=fit.weights.tolist(),
        preference=fit.preference.tolist(),
        sign_stability=stability.tolist(),
        regularization=fit.regularization,
        length_weight=fit.length_weight,
        answer_tokens=float(np.mean(np.concatenate([pairs.win_tokens, pairs.lose_tokens]))),
        n_left_out=n_left_out,
        style_weights=None if fit.style_weights is None else dict(zip(STYLE_NAMES, fit.style_weights.tolist())),
        style_ceilings=None if fit.style_weights is None else dict(zip(STYLE_NAMES, pairs.style_ceilings().tolist())),
    )
    return next(r for r in store.fit_history(profile, limit=5) if r.id == record_id)


def fit_profile(
    store: Store,
    profile: Profile,
    slm: Model,
    settings: ContextSettings,
    *,
    method: str = DEFAULT_METHOD,
    reward: str = "sum",
    max_response_tokens: int = 0,
    progress: ProgressStarter | None = None,
) -> FitOutcome:
    pairs = profile_pairs(store, profile)
    if not pairs:
        raise _nothing_to_fit(store, profile)
    attributes = store.active_attributes(profile)
    if not attributes.attributes:
        raise DriftError(f"profile '{profile.name}' has every attribute disabled", "enable some: drift-local profile attributes")
    cache = RewardCache(store, slm, settings, max_response_tokens)
    try:
        scored = cache.fill_missing(pairs, attributes, progress)
    except KeyboardInterrupt:
        raise Interrupted(f"the {cache.stored} scores computed before it are stored; fit again to go on from there") from None
    usable = cache.scored_pairs(pairs, attributes)
    notice = _left_out(profile, pairs, usable, cache.context_tokens)
    if not usable:
        raise DriftError(notice or "no pair could be scored", "raise --n-ctx, or cap scored responses with --max-response-tokens")
    rewards = cache.rewards(usable, attributes, reward)
    fit = fit_pairs(rewards, method)
    ties = store.count_pairs(profile) - len(pairs)
    record = save_fit(store, profile, slm, rewards, fit, attributes.names, reward, n_left_out=len(pairs) - len(usable))
    return FitOutcome(record, fit, scored, notice, ties)


def _nothing_to_fit(store: Store, profile: Profile) -> DriftError:
    ties = store.count_pairs(profile)  # fits leave ties out, so every pair held is one
    if ties:
        return DriftError(
            f"profile '{profile.name}' holds only ties ({ties} pair{'s' if ties > 1 else ''} with no preferred answer): nothing to fit yet",
            f"choose between two answers: drift-local rate --profile {profile.name}",
        )
    return DriftError(
        f"profile '{profile.name}' has no preference pairs yet",
        f"add some: drift-local profile import {profile.name} FILE, or drift-local rate --profile {profile.name}",
    )


def _left_out(profile: Profile, pairs: list[Pair], usable: list[Pair], context_tokens: int) -> str | None:
    """Pairs too long for the scoring context are left out of a fit, never block it; say which."""
    kept = {id(p) for p in usable}
    ids = [f"#{p.id}" for p in pairs if id(p) not in kept]
    if not ids:
        return None
    shown = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
    return (
        f"{len(ids)} of the {len(pairs)} pairs of '{profile.name}' do not fit the scoring context of {context_tokens} "
        f"tokens with their prompt and were left out ({shown}); raise --n-ctx to include them, or remove them: "
        f"drift-local profile rm-pair {profile.name} ID"
    )


def steering_from_fit(record: FitRecord, store: Store, profile: Profile, k: int, weight_scale: str = "fitted") -> Steering:
    """The top-k attributes of a fit by |weight|, with their prompts as the profile defines them.

    `weight_scale` "unit" uses the weights at the paper's scale, p = w/‖w‖ over all attributes
    (β alone then sets the strength); "fitted" as fitted. The length and style tastes keep their fitted scale.
    """
    prompts = {a.name: a.prompt for a in store.profile_attributes(profile)}
    weights = np.asarray(record.weights, dtype=np.float64)
    if weight_scale == "unit" and np.any(weights):
        weights = weights / np.linalg.norm(weights)
    chosen = [i for i in top_k(weights, k) if record.names[i] in prompts]
    style = record.style_weights or {}
    ceilings = record.style_ceilings or {}  # fits from before ceilings have none: no cap
    return Steering(
        base=store.active_attributes(profile).base,
        names=tuple(record.names[i] for i in chosen),
        prompts=tuple(prompts[record.names[i]] for i in chosen),
        weights=weights[chosen],
        end_bias=end_bias(record.length_weight, record.answer_tokens),
        style_weights=np.array([style.get(name, 0.0) for name in STYLE_NAMES]),
        style_ceilings=np.array([ceilings.get(name, np.inf) for name in STYLE_NAMES]),
        answer_tokens=record.answer_tokens,
    )


def end_bias(length_weight: float, answer_tokens: float) -> float:
    """The reward for ending an answer now, from a fitted taste for length.

    Drift steers one token at a time, and a per-token length reward is the same for every
    next token, so it only acts through ending: continuing costs the next token plus,
    roughly, the half of a typical answer still to come (the profile's answers average
    `answer_tokens`).
    """
    return -length_weight * (1.0 + answer_tokens / 2.0)


def is_stale(record: FitRecord | None, n_pairs: int, method: str, reward: str, names: list[str]) -> bool:
    """A fit is out of date when the pairs, the method, the reward mode or the attributes changed."""
    seen = None if record is None else record.n_pairs + record.n_left_out
    return record is None or (seen, record.method, record.reward, record.names) != (n_pairs, method, reward, names)


def fit_status(store: Store, profile: Profile, method: str, reward: str, model_id: str | None = None) -> tuple[FitRecord | None, bool]:
    """The latest fit (with this sLM, or any when model_id is None) and whether it is stale:
    the one rule behind refitting before decoding and `profile show`'s warning."""
    record = store.latest_fit(profile, model_id)
    n_pairs = store.count_pairs(profile, include_ties=False)  # fits leave ties out
    return record, is_stale(record, n_pairs, method, reward, store.active_attributes(profile).names)


def profile_steering(
    store: Store,
    profile: Profile,
    slm: Model,
    settings: ContextSettings,
    k: int,
    *,
    method: str = DEFAULT_METHOD,
    reward: str = "sum",
    max_response_tokens: int = 0,
    weight_scale: str = "fitted",
    progress: ProgressStarter | None = None,
) -> tuple[Steering | None, str | None]:
    """The profile's steering for this sLM, refitting if pairs changed; or None and why."""
    n_pairs = store.count_pairs(profile, include_ties=False)  # fits leave ties out
    if n_pairs == 0:
        return None, f"{_nothing_to_fit(store, profile).message}: plain decoding"
    record, stale = fit_status(store, profile, method, reward, slm.fingerprint)
    notice = None
    if stale:
        outcome = fit_profile(
            store, profile, slm, settings, method=method, reward=reward, max_response_tokens=max_response_tokens, progress=progress
        )
        record, notice = outcome.record, outcome.notice
    return steering_from_fit(record, store, profile, k, weight_scale), notice


def settings_steering(
    store: Store, profile: Profile, slm: Model, settings: Settings, progress: ProgressStarter | None = None
) -> tuple[Steering | None, str | None]:
    """`profile_steering` with the method, reward, scoring cap, k and weight scale of the user's settings."""
    return profile_steering(
        store, profile, slm, settings.context(), settings.attributes, method=settings.method,
        reward=settings.reward, max_response_tokens=settings.max_response_tokens, weight_scale=settings.weight_scale,
        progress=progress,
    )


def fit_named(settings: Settings, name: str, slm: str | None = None, progress: ProgressStarter | None = None) -> FitOutcome:
    """`drift-local fit`: the named profile, with the settings' sLM (or `slm`), method and reward."""
    from drift_local.sessions.runtime import open_slm

    with Store.open() as store:
        profile = store.get_profile(name)
        model = open_slm(settings, slm)
        return fit_profile(
            store, profile, model, settings.context(), method=settings.method, reward=settings.reward,
            max_response_tokens=settings.max_response_tokens, progress=progress,
        )


def scoring_estimate(settings: Settings, slm: str | None = None) -> tuple[Callable[[int], float], str]:
    """tokens -> rough seconds of scoring with this sLM on this machine, and the model's file name."""
    from drift_local.engine.context import default_threads
    from drift_local.sessions.rewards import rough_scoring_seconds
    from drift_local.sessions.runtime import model_file

    path = model_file(slm or settings.slm)
    size, threads = path.stat().st_size, settings.threads or default_threads()
    return (lambda tokens: rough_scoring_seconds(size, tokens, threads)), path.name
