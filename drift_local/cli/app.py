"""The `drift-local` command. Commands only parse, call a session, and render."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from drift_local.cli.common import err_console
from drift_local.errors import DriftError

app = typer.Typer(
    name="drift-local",
    help="Personalize a local LLM to one person from a few dozen of their choices, with no training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"drift-local {version('drift-local')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit.")] = False,
) -> None:
    pass


def _register() -> None:
    # Command modules register themselves on import; none imports llama.cpp at module level,
    # so --help and shell completion stay instant.
    from drift_local.cli import models_cmd  # noqa: F401
    from drift_local.cli import profile_cmd  # noqa: F401
    from drift_local.cli import config_cmd  # noqa: F401
    from drift_local.cli import fit_cmd  # noqa: F401
    from drift_local.cli import generate_cmd  # noqa: F401
    from drift_local.cli import chat_cmd  # noqa: F401
    from drift_local.cli import demo_cmd  # noqa: F401
    from drift_local.cli import eval_cmd  # noqa: F401
    from drift_local.cli import rate_cmd  # noqa: F401
    from drift_local.cli import logs_cmd  # noqa: F401


def main() -> None:
    _register()
    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except DriftError as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
        if exc.hint:
            err_console.print(f"[dim]hint: {escape(exc.hint)}[/]", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors, raised by typer's own vendored click
        if not hasattr(exc, "show"):
            raise
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
