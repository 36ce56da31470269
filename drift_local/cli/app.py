"""The `drift-local` command. Commands only parse, call a session, and render."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from typing import Annotated

import typer
import typer.core
from rich.markup import escape

from drift_local.cli.common import err_console
from drift_local.errors import DriftError

class _CommandInterrupted(Exception):
    """A Ctrl-C inside a command, carried past typer (which would make it a bare exit 130)."""

    def __init__(self, interrupt: KeyboardInterrupt):
        super().__init__(str(interrupt))
        self.interrupt = interrupt


class _Commands(typer.core.TyperGroup):
    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _CommandInterrupted(exc) from None


app = typer.Typer(
    name="drift-local",
    cls=_Commands,
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
    from drift_local.cli import profile_pairs_cmd  # noqa: F401
    from drift_local.cli import config_cmd  # noqa: F401
    from drift_local.cli import fit_cmd  # noqa: F401
    from drift_local.cli import generate_cmd  # noqa: F401
    from drift_local.cli import chat_cmd  # noqa: F401
    from drift_local.cli import demo_cmd  # noqa: F401
    from drift_local.cli import eval_cmd  # noqa: F401
    from drift_local.cli import rate_cmd  # noqa: F401
    from drift_local.cli import doctor_cmd  # noqa: F401
    from drift_local.cli import serve_cmd  # noqa: F401
    from drift_local.cli import logs_cmd  # noqa: F401


def main() -> None:
    """Every failure ends in one line on stderr and an exit code (README, "Exit codes"):
    0 done, 1 error, 2 usage error, 130 interrupted."""
    try:
        _register()
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except DriftError as exc:
        _fail(exc.message, exc.hint)
    except KeyboardInterrupt as exc:
        _interrupted(exc)
    except _CommandInterrupted as exc:
        _interrupted(exc.interrupt)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _interrupted(None)
    except typer.TyperException as exc:  # usage errors, raised by typer's own vendored click
        if not hasattr(exc, "show"):
            _unexpected(exc)
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    except sqlite3.Error as exc:
        from drift_local.config import store_path
        from drift_local.store.store import store_error

        error = store_error(store_path(), exc, writing=False)  # writes convert their own errors
        _fail(error.message, error.hint)
    except MemoryError:
        _fail("out of memory", "lower --n-ctx or the number of attributes, or close other programs")
    except OSError as exc:  # a full disk, a vanished file, a closed pipe
        if isinstance(exc, BrokenPipeError):
            sys.exit(1)
        where = f" ({exc.filename})" if exc.filename else ""
        _fail(f"{exc.strerror or exc}{where}", "check the disk and the paths given")
    except Exception as exc:
        _unexpected(exc)


def _interrupted(exc: KeyboardInterrupt | None) -> None:
    """Exit 130 with one line; errors.Interrupted says what was kept."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the goodbye
    try:
        detail = f": {exc}" if exc is not None and str(exc) else ""
        err_console.print(f"[yellow]interrupted[/]{detail}", highlight=False, soft_wrap=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.exit(130)


def _fail(message: str, hint: str | None = None) -> None:
    # Escaped: a hint like pip install 'drift-local[serve]' is not markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint: {escape(hint)}[/]", highlight=False, soft_wrap=True)
    sys.exit(1)


def _unexpected(exc: BaseException) -> None:
    """A bug: one line by default, the traceback with DRIFT_LOCAL_DEBUG=1."""
    if os.environ.get("DRIFT_LOCAL_DEBUG"):
        raise exc
    detail = " ".join(str(exc).split())[:300]
    _fail(f"unexpected {type(exc).__name__}{f': {detail}' if detail else ''}", "run again with DRIFT_LOCAL_DEBUG=1 for the traceback, and please report it")
