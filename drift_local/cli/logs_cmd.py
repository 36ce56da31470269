"""`drift-local logs`: list, search and show the logged chats and generations."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import console, print_json

logs_app = typer.Typer(rich_markup_mode="rich", invoke_without_command=True)
app.add_typer(logs_app, name="logs", help="List, search and show logged conversations (chat and generate).")

SNIPPET = 60  # characters of the first prompt shown in the list


@logs_app.callback()
def list_logs(
    ctx: typer.Context,
    profile: Annotated[Optional[str], typer.Option("--profile", "-p", help="Only this profile's conversations.")] = None,
    query: Annotated[Optional[str], typer.Option("--query", "-q", metavar="TEXT", help="Only conversations with a message containing TEXT.")] = None,
    n: Annotated[int, typer.Option("--count", "-n", min=1, help="How many, most recent first.")] = 20,
    json_out: options.Json = False,
) -> None:
    """List conversations, most recent first; `logs show ID` prints one.

    Resume one with: drift-local chat --resume ID."""
    if ctx.invoked_subcommand is not None:
        return
    from drift_local.sessions.logs import find_conversations

    found = find_conversations(profile, query, n)
    if json_out:
        print_json([asdict(c) for c in found])
        return
    if not found:
        console.print("no logged conversations" + (f" containing {escape(repr(query))}" if query else ""), highlight=False)
        return
    table = Table("id", "when", "profile", "kind", "messages", "first message")
    for c in found:
        first = c.first_prompt.replace("\n", " ")
        first = first if len(first) <= SNIPPET else first[: SNIPPET - 1] + "…"
        table.add_row(
            str(c.id), (c.last_message or c.created)[:16].replace("T", " "), escape(c.profile or "-"),
            c.meta.get("command", "chat"), str(c.n_messages), escape(first),
        )
    console.print(table)
    console.print("[dim]show one: drift-local logs show ID · continue it: drift-local chat --resume ID[/]")


@logs_app.command("show")
def show(
    conversation: Annotated[int, typer.Argument(metavar="ID", help="The conversation's id (first column of `drift-local logs`).")],
    json_out: options.Json = False,
) -> None:
    """Print one conversation, message by message."""
    from drift_local.sessions.logs import read_conversation

    summary, messages = read_conversation(conversation)
    if json_out:
        print_json({**asdict(summary), "messages": [asdict(m) for m in messages]})
        return
    who = f"profile {summary.profile}" if summary.profile else "no profile"
    console.print(f"[bold]conversation #{summary.id}[/] · {escape(who)} · {summary.created[:16].replace('T', ' ')}", highlight=False)
    for m in messages:
        tags = [k for k in ("preferred",) if k in m.meta]
        stop = m.meta.get("stop")
        extra = f" [dim]({stop})[/]" if stop in ("interrupted", "context", "length") else ""
        extra += " [dim](chosen by /prefer)[/]" if tags else ""
        console.print(f"[bold]{m.role}[/]{extra}: {escape(m.content)}", highlight=False)
