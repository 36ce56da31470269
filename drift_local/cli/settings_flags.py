"""Turn command-line overrides into Settings: flags win over the config file."""

from __future__ import annotations

import math

from drift_local.config import Settings, load_settings
from drift_local.drift.approx import FIT_METHODS
from drift_local.drift.sampling import SamplerSettings
from drift_local.drift.steering import Decoding
from drift_local.errors import DriftError


def settings_with(**overrides) -> Settings:
    settings = load_settings()
    for key, value in overrides.items():
        if value is not None:
            setattr(settings, key, value)
    if settings.beta <= 0 or math.isnan(settings.beta):
        raise DriftError(f"beta must be > 0, got {settings.beta}", "smaller beta steers harder; try 0.5")
    if settings.reward not in ("sum", "mean"):
        raise DriftError(f"unknown reward mode {settings.reward!r}", "use sum or mean")
    if settings.method not in FIT_METHODS:
        raise DriftError(f"unknown fit method {settings.method!r}", f"use one of: {', '.join(FIT_METHODS)}")
    return settings


def decoding_of(settings: Settings) -> Decoding:
    """How strongly and how safely decoding steers, from the settings."""
    return Decoding(settings.beta, settings.plausibility, settings.kl_budget)


def sampler_settings(settings: Settings, *, seed, greedy, top_k, min_p, repeat_penalty) -> SamplerSettings:
    return SamplerSettings(
        temperature=settings.temperature,
        top_k=top_k,
        top_p=settings.top_p,
        min_p=min_p,
        repeat_penalty=repeat_penalty,
        greedy=greedy,
        seed=seed,
    )
