"""`models list` as a table: sizes, where each model is, and the defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table


def models_table(rows: list[dict[str, Any]], defaults: dict[str, str]) -> Table:
    caption = (
        f"default llm: {defaults['llm']}, default slm: {defaults['slm']} "
        "(change with `drift-local config set llm|slm NAME`; --llm/--slm override them for one run)"
    )
    table = Table(title="Models", title_justify="left", caption=caption, caption_justify="left")
    for column in ("name", "role", "tokenizer", "size", "downloaded", "default"):
        table.add_column(column, no_wrap=True)
    table.add_column("path", overflow="fold")
    for row in rows:
        table.add_row(
            escape(row["name"]),
            row["role"] or "-",
            escape(row["tokenizer"] or "?"),
            _human_size(row),
            _downloaded_cell(row),
            ", ".join(row["default_for"]),
            escape(_path_cell(row)),
        )
    return table


def _human_size(row: dict[str, Any]) -> str:
    size = float(row["size_bytes"])
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000
    return f"{'' if row['size_exact'] else '~'}{size:.3g} {unit}"


def _downloaded_cell(row: dict[str, Any]) -> str:
    if row["embedded"]:
        return "[cyan]embedded[/]" if row["downloaded"] else "[red]missing[/]"
    return "[green]yes[/]" if row["downloaded"] else "[dim]no[/]"


def _path_cell(row: dict[str, Any]) -> str:
    """Short enough for a laptop terminal; `models path NAME` prints the full path."""
    if row.get("embedded"):
        return "(built in)"
    path = row["path"]
    return path.replace(str(Path.home()), "~", 1) if path else "-"
