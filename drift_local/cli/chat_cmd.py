"""`drift-local chat`: a streaming multi-turn chat steered by a profile, with slash commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.settings_flags import DecodingFlags, decoding_flags


@app.command()
@decoding_flags
def chat(
    profile: options.Profile = None,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="Your own system prompt for the LLM (change it inside with /system).")] = None,
    resume: Annotated[Optional[int], typer.Option("--resume", "-r", metavar="ID", help="Continue conversation ID (see: drift-local logs).")] = None,
    continue_last: Annotated[bool, typer.Option("--continue", "-c", help="Continue this profile's last conversation.")] = False,
    flags: DecodingFlags = None,
) -> None:
    """Chat with the LLM, steered by a profile's preferences. Type /help inside for commands.

    Line editing and history (Up/Down, Ctrl-R) as in a shell; Ctrl-C stops an answer,
    Ctrl-D or /bye quits. Every turn is logged: `drift-local logs` finds it again.
    """
    from drift_local.cli.chat_repl import run_chat
    from drift_local.cli.common import exit_without_waiting, note
    from drift_local.cli.progress import token_progress
    from drift_local.errors import DriftError
    from drift_local.sessions.chat import open_chat

    if resume is not None and continue_last:
        raise DriftError("--resume and --continue both pick a conversation", "give one of them")
    settings = flags.settings()
    with token_progress("scoring the profile's pairs") as progress:
        session, models, notices = open_chat(
            settings, llm=flags.llm, slm=flags.slm, profile=profile, system=system, resume=resume,
            continue_last=continue_last, keep_beta="beta" not in flags.overrides, greedy=flags.greedy, progress=progress,
        )
    for notice in notices:
        note(notice)
    try:
        run_chat(session, models)
    finally:
        stopped = session.close()
    if not stopped:  # a background refit is inside one llama.cpp call; what it did not commit is redone next time
        exit_without_waiting()
