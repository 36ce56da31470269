"""Open the LLM and sLM named by flags or the config, once, with the user's engine settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drift_local import config
from drift_local.catalog.catalog import resolve_model
from drift_local.config import Settings
from drift_local.engine.f16_copy import f16_copy
from drift_local.engine.model import Model, ModelSettings, load_model
from drift_local.engine.tokenizer_check import shared_vocab_size


@dataclass
class Models:
    llm: Model
    slm: Model
    n_vocab: int  # token ids both read the same way

    @property
    def shared(self) -> bool:
        """The same file serves as LLM and sLM (the embedded default)."""
        return self.llm is self.slm


def model_file(spec: str | None) -> Path:
    """The GGUF to load for a model spec; the embedded Q4_1 model runs from its F16 copy (see f16_copy)."""
    resolved = resolve_model(spec)
    if resolved.source == "embedded":
        return f16_copy(resolved.path, config.models_dir() / "embedded")
    return resolved.path


def open_slm(settings: Settings, slm: str | None = None) -> Model:
    return load_model(model_file(slm or settings.slm), ModelSettings(settings.n_gpu_layers))


def open_models(settings: Settings, llm: str | None = None, slm: str | None = None) -> Models:
    """With no sLM named or configured, the LLM is its own sLM (it always shares its tokenizer)."""
    llm_spec = llm or settings.llm
    large = load_model(model_file(llm_spec), ModelSettings(settings.n_gpu_layers))
    small = open_slm(settings, slm or settings.slm or llm_spec)
    return Models(large, small, shared_vocab_size(large, small))


def check_pair(settings: Settings) -> None:
    """Refuse an LLM and sLM that do not share a tokenizer (loads both models' vocabularies)."""
    if settings.slm and settings.slm != settings.llm:
        open_models(settings.updated(n_gpu_layers=0))
