"""Changing the stored defaults (`drift-local config set | unset`) and checking the store
(`drift-local doctor`): what those commands do, apart from showing it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from drift_local import config
from drift_local.errors import DriftError

MODEL_KEYS = ("llm", "slm")


def set_setting(key: str, value: str) -> tuple[config.Settings, Path, str | None]:
    """Store one setting, checked against its range; an LLM and sLM that do not share a
    tokenizer are refused. A model may be set before it is downloaded: returned is a note
    saying so (else None), with the new settings and the file written."""
    settings = config.parse_setting(config.load_settings(), key, value)
    note = None
    if key in MODEL_KEYS:
        from drift_local.catalog.catalog import resolve_model
        from drift_local.sessions.runtime import check_pair

        try:
            resolve_model(value)
        except DriftError as exc:
            note = f"{key} saved, but {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        else:
            check_pair(settings)
    return settings, config.save_settings(settings), note


def unset_setting(key: str) -> tuple[object, Path]:
    """Put one setting back to its default; returns the default and the file written."""
    if key not in config.Settings.keys():
        raise DriftError(f"unknown setting '{key}'", hint=f"one of: {', '.join(config.Settings.keys())}")
    settings = config.load_settings()
    default = getattr(config.Settings(), key)
    return default, config.save_settings(settings.updated(**{key: default}) if default is not None else replace(settings, **{key: None}))


def check_store(restore: bool = False) -> tuple[tuple[Path, Path] | None, dict]:
    """The store's full check (after putting the newest good backup in place, with `restore`):
    (the backup restored and where the old store went, or None; the report)."""
    from drift_local.store import health

    path = config.store_path()
    restored = health.restore_latest(path) if restore else None
    return restored, health.diagnose(path)
