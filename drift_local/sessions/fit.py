"""Drift Approximation for a stored profile: score what is missing, fit p, keep the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from drift_local.drift.approx import Fit, fit_logreg, fit_qp, top_k
from drift_local.engine.context import ContextSettings
from drift_local.engine.model import Model
from drift_local.errors import DriftError
from drift_local.profiles.store import FitRecord, Profile, Store
from drift_local.sessions.decoder import Steering
from drift_local.sessions.rewards import PairText, RewardCache

# start(total_tokens) -> advance(n_tokens): how a UI shows scoring progress.
ProgressStarter = Callable[[int], Callable[[int], None]]

METHODS = {"qp": fit_qp, "logreg": fit_logreg}


@dataclass
class FitOutcome:
    record: FitRecord
    fit: Fit
    scored_tokens: int  # 0 when every reward was cached


def profile_pairs(store: Store, profile: Profile) -> list[PairText]:
    return [PairText(p.prompt, p.chosen, p.rejected) for p in store.list_pairs(profile, include_ties=False)]


def fit_profile(
    store: Store,
    profile: Profile,
    slm: Model,
    settings: ContextSettings,
    *,
    method: str = "qp",
    reward: str = "sum",
    max_response_tokens: int = 0,
    progress: ProgressStarter | None = None,
) -> FitOutcome:
    if method not in METHODS:
        raise DriftError(f"unknown method {method!r}", "use qp (the paper) or logreg")
    pairs = profile_pairs(store, profile)
    if not pairs:
        raise DriftError(
            f"profile '{profile.name}' has no preference pairs yet",
            f"add some: drift-local profile import {profile.name} FILE, or drift-local rate --profile {profile.name}",
        )
    attributes = store.active_attributes(profile)
    if not attributes.attributes:
        raise DriftError(f"profile '{profile.name}' has every attribute disabled", "enable some: drift-local profile attributes")
    cache = RewardCache(store, slm, settings, max_response_tokens)
    scored = cache.fill_missing(pairs, attributes, progress)
    rewards = cache.rewards(pairs, attributes, reward)
    fit = METHODS[method](rewards.win, rewards.lose)
    record_id = store.save_fit(
        profile,
        model_id=slm.fingerprint,
        method=method,
        reward=reward,
        n_pairs=fit.n_pairs,
        names=attributes.names,
        weights=fit.weights.tolist(),
        preference=fit.preference.tolist(),
    )
    record = next(r for r in store.fit_history(profile, limit=5) if r.id == record_id)
    return FitOutcome(record, fit, scored)


def steering_from_fit(record: FitRecord, store: Store, profile: Profile, k: int) -> Steering:
    """The top-k attributes of a fit by |p_i|, with their prompts as the profile defines them."""
    prompts = {a.name: a.prompt for a in store.profile_attributes(profile)}
    weights = np.asarray(record.weights, dtype=np.float64)
    chosen = [i for i in top_k(weights, k) if record.names[i] in prompts]
    return Steering(
        base=store.active_attributes(profile).base,
        names=tuple(record.names[i] for i in chosen),
        prompts=tuple(prompts[record.names[i]] for i in chosen),
        weights=weights[chosen],
    )


def profile_steering(
    store: Store,
    profile: Profile,
    slm: Model,
    settings: ContextSettings,
    k: int,
    *,
    reward: str = "sum",
    max_response_tokens: int = 0,
    progress: ProgressStarter | None = None,
) -> tuple[Steering | None, str | None]:
    """The profile's steering for this sLM, refitting if pairs changed; or None and why."""
    n_pairs = store.count_pairs(profile, include_ties=False)  # fits leave ties out
    if n_pairs == 0:
        return None, f"profile '{profile.name}' has no preference pairs yet: plain decoding"
    record = store.latest_fit(profile, slm.fingerprint)
    stale = record is None or (record.n_pairs, record.reward, record.names) != (
        n_pairs, reward, store.active_attributes(profile).names,
    )
    if stale:
        record = fit_profile(
            store, profile, slm, settings, reward=reward, max_response_tokens=max_response_tokens, progress=progress
        ).record
    return steering_from_fit(record, store, profile, k), None
