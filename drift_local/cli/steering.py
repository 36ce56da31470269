"""Steering for a named profile, with a progress bar for any scoring and the notices a user should see."""

from __future__ import annotations

from drift_local.cli.common import err_console
from drift_local.cli.progress import token_progress
from drift_local.config import Settings
from drift_local.engine.model import Model
from drift_local.profiles.store import Store
from drift_local.sessions.decoder import Steering
from drift_local.sessions.fit import profile_steering
from drift_local.sessions.runtime import context_settings


def load_steering(name: str, slm: Model, settings: Settings) -> Steering | None:
    with Store.open() as store:
        profile = store.get_profile(name)
        with token_progress(f"scoring '{name}' pairs") as progress:
            steering, notice = profile_steering(
                store, profile, slm, context_settings(settings), settings.attributes,
                method=settings.method, reward=settings.reward, max_response_tokens=settings.max_response_tokens, progress=progress,
            )
    if notice:
        err_console.print(f"[yellow]note:[/] {notice}")
    return steering
