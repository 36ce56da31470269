"""Questions a command asks in a terminal, and the one-line error where there is none to ask in."""

from __future__ import annotations

import sys

import typer

from drift_local.errors import DriftError


def confirmed(question: str) -> bool:
    """The person's yes or no to a deletion; outside a terminal, an error that says to pass --yes."""
    if not sys.stdin.isatty():
        raise DriftError("not deleting without confirmation", hint="pass --yes to delete without a terminal")
    return typer.confirm(question, default=False)


def given_or_asked(value: str | None, field: str, without: str) -> str:
    """`value` when an option gave it, else asked for in a terminal."""
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise DriftError(f"missing --{field}", hint=without)
    return typer.prompt(field)
