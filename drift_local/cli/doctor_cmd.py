"""`drift-local doctor`: the store's full check, its backups, and restoring one."""

from __future__ import annotations

from typing import Annotated

import typer

from drift_local.cli.app import app
from drift_local.cli.common import console, err_console, print_json
from drift_local.sessions.settings import check_store


@app.command()
def doctor(
    restore: Annotated[
        bool,
        typer.Option("--restore", help="Put the newest backup that passes the check in place of the store (the store is moved aside, not deleted)."),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check the whole store (SQLite's integrity_check) and list its automatic backups.

    A backup is taken after a write when the newest is over 15 minutes old and the store passes
    its quick check; the newest 5 are kept in `backups/` beside the store. Exits 1 when the store is damaged.
    Stop other drift-local sessions before --restore.
    """
    restored, report = check_store(restore)
    if restored:
        source, aside = restored
        console.print(f"restored {source.name}; the store that was in place is now {aside}", soft_wrap=True, highlight=False)
    if json_out:
        print_json(report)
    else:
        _print(report)
    if not report["ok"] and report["exists"]:
        raise typer.Exit(1)


def _print(report: dict) -> None:
    if not report["exists"]:
        console.print(f"no store yet at {report['store']} (it is created on first use)")
    elif report["ok"]:
        console.print(f"store OK: {report['store']} ({report['size_bytes'] / 1e6:.1f} MB)")
    else:
        problems = report["problems"]
        err_console.print(f"[bold red]store damaged:[/] {report['store']}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""), soft_wrap=True, highlight=False)
    if report["backups"]:
        newest = report["backups"][0]
        count = len(report["backups"])
        console.print(f"{count} backup{'s' if count > 1 else ''}, newest {newest['created']}: {newest['path']}", soft_wrap=True, highlight=False)
    else:
        console.print("no backups yet (one is taken after a write, when the newest is over 15 minutes old)")
    if report["exists"] and not report["ok"]:
        err_console.print("hint: restore the newest good backup with: drift-local doctor --restore "
                          "(save what is readable first: drift-local profile export NAME FILE)", soft_wrap=True, highlight=False)
