"""Where drift-local keeps things, and the user's defaults (a TOML file in the config dir).

Every path can be redirected with DRIFT_LOCAL_HOME (one folder for config, data and models),
which is what the tests and throwaway runs use.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import platformdirs
import tomli_w

from drift_local.errors import DriftError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP = "drift-local"


def _home() -> Path | None:
    home = os.environ.get("DRIFT_LOCAL_HOME")
    return Path(home).expanduser() if home else None


def config_dir() -> Path:
    return _home() or Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    return _home() or Path(platformdirs.user_data_dir(APP))


def models_dir() -> Path:
    home = _home()
    return (home / "models") if home else Path(platformdirs.user_cache_dir(APP)) / "models"


def config_path() -> Path:
    return config_dir() / "config.toml"


def store_path() -> Path:
    return data_dir() / "drift.db"


@dataclass
class Settings:
    """User defaults. Models are catalogue names or .gguf paths; empty means the embedded model."""

    llm: str = ""
    slm: str = ""
    threads: int = 0  # 0: all physical cores
    n_ctx: int = 4096  # tokens per sequence
    n_batch: int = 512
    n_gpu_layers: int = -1  # -1: offload everything when built with CUDA/Metal; ignored on CPU
    beta: float = 0.5  # steering strength: the paper's KL weight (smaller steers harder)
    plausibility: float = 0.1  # α: only tokens with p_LLM ≥ α · max p_LLM may be steered to
    kl_budget: float = math.inf  # nats one steered token may move from the LLM's distribution
    temperature: float = 0.8  # plain SmolLM2 wanders at 1.0 and loops at 0.6 (benchmarks/results)
    top_p: float = 0.9
    attributes: int = 7  # k attributes used in decoding
    max_tokens: int = 500  # the paper's text length
    method: str = "bt"  # how fit turns pairs into weights (see drift-local fit --help)
    reward: str = "sum"  # sum (the paper) or mean (per token)
    max_response_tokens: int = 0  # cap on scored response length; 0: no cap
    extra: dict = field(default_factory=dict)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]


def load_settings() -> Settings:
    path = config_path()
    if not path.exists():
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DriftError(f"config file {path} is not valid TOML: {exc}", "fix or delete it") from None
    known = {k: raw.pop(k) for k in list(raw) if k in Settings.keys()}
    settings = Settings(**known, extra=raw)
    for key in Settings.keys():
        expected = type(getattr(Settings(), key))
        value = getattr(settings, key)
        if expected is float and isinstance(value, int):
            setattr(settings, key, float(value))
        elif not isinstance(value, expected):
            raise DriftError(f"config {path}: '{key}' must be {expected.__name__}, got {value!r}")
    return settings


def save_settings(settings: Settings) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in asdict(settings).items() if k != "extra"}
    data.update(settings.extra)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
