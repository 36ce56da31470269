"""What every command shares: consoles and JSON output."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Machine-readable output: plain JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def note(text: str) -> None:
    """A notice on stderr; `text` is shown as written (no Rich markup read in it)."""
    err_console.print(f"[yellow]note:[/] {escape(text)}", highlight=False, soft_wrap=True)


def error_line(text: str) -> None:
    """A one-line error inside an interactive session that goes on."""
    err_console.print(f"[red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def exit_without_waiting() -> None:
    """Exit now, leaving a background thread that is inside one llama.cpp call (its work is a
    cache, redone when needed): waiting for it, or tearing the model down under it, would not do."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
