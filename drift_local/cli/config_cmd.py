"""`drift-local config`: show and change the user's defaults (config.toml)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.table import Table

from drift_local import config
from drift_local.catalog.catalog import resolve_model
from drift_local.cli.app import app
from drift_local.cli.common import console, err_console, print_json
from drift_local.errors import DriftError

_MODEL_KEYS = ("llm", "slm")
_CHOICES = {"reward": ("sum", "mean"), "method": ("bt", "paper", "logreg")}

config_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(
    config_app,
    name="config",
    help=(
        "Show and change the defaults kept in config.toml. "
        "Flags given to a command (--llm, --slm, ...) override them for that run only."
    ),
)


def _current() -> dict[str, Any]:
    return {key: value for key, value in asdict(config.load_settings()).items() if key != "extra"}


@config_app.command("show")
def show_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """Show every setting (an empty llm/slm means the embedded model)."""
    current = _current()
    if as_json:
        print_json(current)
        return
    defaults = asdict(config.Settings())
    table = Table(title=str(config.config_path()), title_justify="left")
    for column in ("key", "value", "default"):
        table.add_column(column)
    for key, value in current.items():
        table.add_row(key, repr(value), "" if value != defaults[key] else "[dim]yes[/]")
    console.print(table)


def _convert(key: str, raw: str) -> Any:
    """The value typed on the command line, as the type of the setting's default."""
    expected = type(getattr(config.Settings(), key))
    try:
        value = expected(raw)
    except ValueError:
        example = getattr(config.Settings(), key)
        raise DriftError(
            f"'{key}' must be {expected.__name__}, got {raw!r}", hint=f"e.g. drift-local config set {key} {example}"
        ) from None
    if key in _CHOICES and value not in _CHOICES[key]:
        raise DriftError(f"'{key}' must be one of {', '.join(_CHOICES[key])}, got {raw!r}")
    return value


def _warn_if_unusable(key: str, value: str) -> None:
    """A model default may be set before it is downloaded; say so rather than fail later."""
    try:
        resolve_model(value)
    except DriftError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        err_console.print(f"[yellow]note:[/] {key} saved, but {exc.message}{hint}", highlight=False, soft_wrap=True)


@config_app.command("set")
def set_cmd(
    key: Annotated[str, typer.Argument(help=f"One of: {', '.join(config.Settings.keys())}.")],
    value: Annotated[str, typer.Argument(help='The new value; for llm/slm a model name, REPO/FILE, path or "".')],
) -> None:
    """Change one setting, e.g. `config set llm llama-3.1-8b` or `config set n_gpu_layers 0`."""
    if key not in config.Settings.keys():
        raise DriftError(f"unknown setting '{key}'", hint=f"one of: {', '.join(config.Settings.keys())}")
    settings = config.load_settings()
    setattr(settings, key, _convert(key, value))
    path = config.save_settings(settings)
    console.print(f"{key} = {getattr(settings, key)!r}  [dim]({path})[/]", highlight=False, soft_wrap=True)
    if key in _MODEL_KEYS:
        _warn_if_unusable(key, value)


@config_app.command("path")
def path_cmd() -> None:
    """Print the path of config.toml (it may not exist yet)."""
    typer.echo(str(config.config_path()))
