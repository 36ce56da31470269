"""Command-line overrides of the settings: flags win over the config file, and both are
checked by `Settings` itself, so a flag and `config set` refuse the same values the same way.

An option block is declared once and handed to each command that takes it as one
`DecodingFlags`: `decoding_flags` (chat, generate, serve: the models, steering, sampling and
engine flags) and `scoring_flags` (fit, eval: the sLM and how it scores).
"""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, field
from typing import Callable

from drift_local.cli import options
from drift_local.config import Settings, load_settings


def settings_with(**overrides) -> Settings:
    """The config file's settings with the flags that were given (None: not given)."""
    return load_settings().updated(**overrides)


@dataclass
class DecodingFlags:
    """What a command's shared flags ask for."""

    llm: str | None = None
    slm: str | None = None
    greedy: bool = False
    overrides: dict = field(default_factory=dict)  # Settings keys -> values given

    def settings(self, **more) -> Settings:
        """The settings with these flags and `more` (the command's own; None: not given)."""
        return settings_with(**self.overrides, **more)


# name -> (annotation, default); every name but llm, slm and greedy is a Settings key.
_FLAGS = {
    "llm": (options.Llm, None),
    "slm": (options.Slm, None),
    "beta": (options.Beta, None),
    "attributes": (options.Attributes, None),
    "seed": (options.Seed, None),
    "greedy": (options.Greedy, False),
    "temperature": (options.Temperature, None),
    "top_p": (options.TopP, None),
    "top_k": (options.TopK, None),
    "min_p": (options.MinP, None),
    "repeat_penalty": (options.RepeatPenalty, None),
    "max_tokens": (options.MaxTokens, None),
    "n_ctx": (options.NCtx, None),
    "threads": (options.Threads, None),
    "n_gpu_layers": (options.NGpuLayers, None),
    "max_response_tokens": (options.MaxResponseTokens, None),
}


def _flag_block(*names: str) -> Callable[[Callable], Callable]:
    """A decorator that adds these flags to a command, which receives them as `flags: DecodingFlags`."""
    block = {name: _FLAGS[name] for name in names}

    def add_flags(command: Callable) -> Callable:
        signature = inspect.signature(command)
        hints = typing.get_type_hints(command, include_extras=True)  # the command module's names, resolved
        own = [p.replace(annotation=hints[name]) for name, p in signature.parameters.items() if name != "flags"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, (annotation, default) in block.items()
        ]

        @functools.wraps(command)
        def wrapper(**kwargs):
            given = {name: kwargs.pop(name) for name in block}
            flags = DecodingFlags(
                llm=given.pop("llm", None), slm=given.pop("slm", None), greedy=given.pop("greedy", False),
                overrides={k: v for k, v in given.items() if v is not None},
            )
            return command(**kwargs, flags=flags)

        wrapper.__signature__ = signature.replace(parameters=[*own, *shared])
        del wrapper.__wrapped__  # typer must read the new signature, not the command's own
        wrapper.__annotations__ = {p.name: p.annotation for p in (*own, *shared)}
        return wrapper

    return add_flags


decoding_flags = _flag_block(
    "llm", "slm", "beta", "attributes", "seed", "greedy", "temperature", "top_p", "top_k", "min_p", "repeat_penalty",
    "max_tokens", "n_ctx", "threads", "n_gpu_layers",
)
scoring_flags = _flag_block("slm", "max_response_tokens", "n_ctx", "threads", "n_gpu_layers")
