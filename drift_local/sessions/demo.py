"""The demo's workflow: a throwaway profile from bundled example choices, fitted, then one
prompt answered plainly and with Drift (same seed)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Iterator

from drift_local.config import Settings, data_dir
from drift_local.drift.sampling import Sampler
from drift_local.engine.template import Message
from drift_local.store.importers import read_pairs
from drift_local.store.store import Pair, Profile, Store
from drift_local.sessions.decoder import DriftDecoder, Steering
from drift_local.sessions.fit import FitOutcome, ProgressStarter, fit_profile, steering_from_fit
from drift_local.sessions.runtime import Models

DEMO_PROFILE = "demo"


def demo_pairs() -> list[Pair]:
    with resources.as_file(resources.files("drift_local.data").joinpath("demo_pairs.jsonl")) as path:
        return read_pairs(path).pairs


@dataclass
class DemoFit:
    profile: Profile
    pairs: list[Pair]
    outcome: FitOutcome
    steering: Steering


def fit_demo(models: Models, settings: Settings, progress: ProgressStarter | None = None) -> DemoFit:
    """Rebuild the demo profile in the demo's own store (its score cache persists) and fit it."""
    pairs = demo_pairs()
    with Store.open(data_dir() / "demo.db") as store:
        if any(p.name == DEMO_PROFILE for p in store.list_profiles()):
            store.delete_profile(DEMO_PROFILE)
        profile = store.create_profile(DEMO_PROFILE)
        store.add_pairs(profile, pairs)
        outcome = fit_profile(store, profile, models.slm, settings.context(), progress=progress)
        steering = steering_from_fit(outcome.record, store, profile, settings.attributes, settings.weight_scale)
    return DemoFit(profile, pairs, outcome, steering)


def plain_and_steered(models: Models, steering: Steering, settings: Settings, prompt: str, max_tokens: int) -> Iterator[tuple[str, str]]:
    """("plain" | "drift", new text) as the two answers are written, one after the other."""
    decoder = DriftDecoder(models, steering.k, settings.context())
    conversation = [Message("user", prompt)]
    for key, steer in (("plain", None), ("drift", steering)):
        sampler = Sampler(settings.sampler())
        for step in decoder.stream(conversation, steer, decoding=settings.decoding(), sampler=sampler, max_tokens=max_tokens):
            yield key, step.text
