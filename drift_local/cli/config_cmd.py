"""`drift-local config`: show and change the user's defaults (config.toml)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from drift_local import config
from drift_local.cli.app import app
from drift_local.cli.common import console, note, print_json
from drift_local.sessions.settings import set_setting, unset_setting

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
    table = Table(title=escape(str(config.config_path())), title_justify="left")
    for column in ("key", "value", "default", "valid"):
        table.add_column(column)
    for key, value in current.items():
        table.add_row(key, escape(repr(value)), "" if value != defaults[key] else "[dim]yes[/]", f"[dim]{escape(config.Settings.rule(key))}[/]")
    console.print(table)


# A value may start with '-' (config set beta -1 must reach the range check, not be read as an option).
_VALUE_MAY_LOOK_LIKE_AN_OPTION = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@config_app.command("set", context_settings=_VALUE_MAY_LOOK_LIKE_AN_OPTION)
def set_cmd(
    key: Annotated[str, typer.Argument(help=f"One of: {', '.join(config.Settings.keys())}.")],
    value: Annotated[str, typer.Argument(help='The new value; for llm/slm a model name, REPO/FILE, path or "".')],
) -> None:
    """Change one setting, e.g. `config set llm llama-3.1-8b` or `config set n_gpu_layers 0`.

    Values are checked against each setting's range (see `config show`); an LLM and sLM
    that do not share a tokenizer are refused."""
    settings, path, notice = set_setting(key, value)
    if notice:
        note(notice)
    console.print(f"{key} = {escape(repr(getattr(settings, key)))}  [dim]({escape(str(path))})[/]", highlight=False, soft_wrap=True)


@config_app.command("unset")
def unset_cmd(key: Annotated[str, typer.Argument(help=f"One of: {', '.join(config.Settings.keys())}.")]) -> None:
    """Put one setting back to its default."""
    default, path = unset_setting(key)
    console.print(f"{key} = {escape(repr(default))} (the default)  [dim]({escape(str(path))})[/]", highlight=False, soft_wrap=True)


@config_app.command("path")
def path_cmd() -> None:
    """Print the path of config.toml (it may not exist yet)."""
    typer.echo(str(config.config_path()))
