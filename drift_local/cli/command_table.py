"""The README's command table, made from the commands' own help (run by cog; a test checks it)."""

from __future__ import annotations

import typer


def _summary(command) -> str:
    text = (command.help or command.short_help or "").strip()
    first = text.split("\n\n", 1)[0].replace("\n", " ")
    return first.replace("|", "\\|")


def rows() -> list[tuple[str, str]]:
    """(command, what it does) for every command, groups with their subcommands."""
    from drift_local.cli.app import _register, app

    _register()
    root = typer.main.get_command(app)
    out = []
    for name, command in root.commands.items():
        if hasattr(command, "commands"):  # a group (typer's vendored click has its own classes)
            subcommands = "/".join(command.commands)
            if command.invoke_without_command:  # `logs` works alone too: `logs [show]`
                subcommands = f"[{subcommands}]"
            out.append((f"{name} {subcommands}" if subcommands else name, _summary(command)))
        else:
            out.append((name, _summary(command)))
    return out


def command_table() -> str:
    lines = ["| command | what it does |", "|---|---|"]
    lines += [f"| `{name}` | {summary} |" for name, summary in rows()]
    return "\n".join(lines)
