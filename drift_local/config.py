"""Where drift-local keeps things, and the user's defaults (a TOML file in the config dir).

Every path can be redirected with DRIFT_LOCAL_HOME (one folder for config, data and models),
which is what the tests and throwaway runs use.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional, get_args, get_origin

import platformdirs
import tomli_w
from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from drift_local.errors import DriftError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

APP = "drift-local"
MIN_BETA = 1e-3


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


def _range(low=None, high=None, *, low_open=False, high_open=False, help: str = ""):
    """A field's bounds, as pydantic checks them and as error messages name them."""
    bounds = {("gt" if low_open else "ge"): low, ("lt" if high_open else "le"): high}
    return Field(**{k: v for k, v in bounds.items() if v is not None}, description=help)


@dataclass(config=ConfigDict(validate_assignment=True))
class Settings:
    """User defaults, validated on creation and on every assignment (flags and config alike).

    Models are catalogue names or .gguf paths; empty means the embedded model.
    """

    llm: str = ""
    slm: str = ""
    threads: Annotated[int, _range(0, help="0: all physical cores")] = 0
    n_ctx: Annotated[int, _range(64, 1 << 20, help="tokens per sequence")] = 4096
    n_batch: Annotated[int, _range(1, 1 << 16)] = 512
    n_gpu_layers: Annotated[int, _range(-1, help="-1: offload everything when built with CUDA/Metal")] = -1
    # Steering strength, the paper's KL weight (smaller steers harder; inf: plain decoding).
    # Below 0.001 the steering term swamps the LLM's logits by 1000x: noise, not taste.
    beta: Annotated[float, _range(MIN_BETA, help="smaller steers harder; inf: plain decoding")] = 0.5
    plausibility: Annotated[float, _range(0, 1, high_open=True, help="only tokens with p_LLM >= alpha * max p_LLM")] = 0.1
    kl_budget: Annotated[float, _range(0, low_open=True, help="nats one steered token may move")] = math.inf
    temperature: Annotated[float, _range(0, 100)] = 0.8  # plain SmolLM2 wanders at 1.0, loops at 0.6
    top_p: Annotated[float, _range(0, 1, low_open=True, help="1 turns it off")] = 0.9
    top_k: Annotated[int, _range(0, help="0 turns it off")] = 0
    min_p: Annotated[float, _range(0, 1, high_open=True, help="0 turns it off")] = 0.0
    repeat_penalty: Annotated[float, _range(0, 10, low_open=True, help="1 turns it off")] = 1.0
    no_repeat_ngram: Annotated[int, _range(0, 64, help="never repeat an n-gram of the answer; 0 turns it off")] = 0
    dry_multiplier: Annotated[float, _range(0, 100, help="DRY: penalize continuing a repeat of 2+ tokens, more each token; 0 turns it off")] = 0.8
    seed: Annotated[Optional[int], _range(0, help="unset: a new random seed each run")] = None
    attributes: Annotated[int, _range(0, 64, help="k attributes used in decoding")] = 7
    # unit: decode with the paper's p = w/|w| (β alone sets the strength); fitted: the weights as fitted.
    weight_scale: Literal["unit", "fitted"] = "fitted"
    max_tokens: Annotated[int, _range(1, 1 << 20)] = 500  # the paper's text length
    method: Literal["bt", "paper", "logreg"] = "bt"  # how fit turns pairs into weights
    reward: Literal["sum", "mean"] = "sum"  # sum (the paper) or mean (per token)
    max_response_tokens: Annotated[int, _range(0, help="cap on scored response length; 0: no cap")] = 0
    extra: dict = field(default_factory=dict)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]

    @classmethod
    def rule(cls, key: str) -> str:
        """The valid values of a setting, in words: "> 0 and <= 1", "one of sum, mean"."""
        info = cls.__pydantic_fields__[key]
        if get_origin(info.annotation) is Literal:
            return "one of " + ", ".join(get_args(info.annotation))
        words = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
        parts = [f"{words[name]} {_number(getattr(m, name))}" for m in info.metadata for name in words if hasattr(m, name)]
        kind = {int: "a whole number", float: "a number", str: "text"}.get(info.annotation, "a whole number")
        return kind + (" " + " and ".join(parts) if parts else "") + (f" ({info.description})" if info.description else "")

    def updated(self, **changes: Any) -> Settings:
        """A copy with `changes` (None values ignored: a flag not given), checked as a whole."""
        return _checked(lambda: replace(self, **{k: v for k, v in changes.items() if v is not None}))

    def context(self):
        """Engine settings for a llama.cpp context."""
        from drift_local.engine.context import ContextSettings

        return ContextSettings(n_ctx=self.n_ctx, n_batch=self.n_batch, threads=self.threads)

    def sampler(self, greedy: bool = False):
        """Sampling settings (a fresh Sampler per answer stream restarts the seed)."""
        from drift_local.drift.sampling import SamplerSettings

        return SamplerSettings(
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
            repeat_penalty=self.repeat_penalty, no_repeat_ngram=self.no_repeat_ngram,
            dry_multiplier=self.dry_multiplier, greedy=greedy, seed=self.seed,
        )

    def decoding(self):
        """How strongly and how safely decoding steers."""
        from drift_local.drift.steering import Decoding

        return Decoding(self.beta, self.plausibility, self.kl_budget)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _checked(make: Callable[[], Any], where: str = "", hint: str | None = None) -> Any:
    """Run `make`, turning pydantic's complaint into one line that names the valid range."""
    try:
        return make()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        key = str(error["loc"][0]) if error["loc"] else "setting"
        rule = Settings.rule(key) if key in Settings.keys() else error["msg"]
        raise DriftError(f"{where}{key} must be {rule}, got {error['input']!r}", hint and hint.format(key=key)) from None


def parse_setting(settings: Settings, key: str, raw: str) -> Settings:
    """`settings` with one key set from text typed on a command line (validated)."""
    if key not in Settings.keys():
        raise DriftError(f"unknown setting '{key}'", hint=f"one of: {', '.join(Settings.keys())}")
    return _checked(lambda: replace(settings, **{key: raw}))


def load_settings() -> Settings:
    path = config_path()
    if not path.exists():
        return Settings()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DriftError(f"config file {path} is not valid TOML: {exc}", "fix or delete it") from None
    known = {k: raw.pop(k) for k in list(raw) if k in Settings.keys()}
    return _checked(
        lambda: Settings(**known, extra=raw), f"config {path}: ", "fix it with: drift-local config set {key} VALUE, or config unset {key}"
    )


def save_settings(settings: Settings) -> Path:
    """Write config.toml whole or not at all: a temporary file, fsynced, renamed over it."""
    path = config_path()
    # Only what differs from the defaults: a later release's better default reaches the user.
    defaults = asdict(Settings())
    data = {k: v for k, v in asdict(settings).items() if k != "extra" and v != defaults[k] and v is not None}
    data.update(settings.extra)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as file:
            file.write(tomli_w.dumps(data))
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DriftError(f"cannot write {path}: {exc.strerror or exc}", "the old config is unchanged") from None
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX: the directory entry lives in the folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
