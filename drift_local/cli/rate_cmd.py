"""`drift-local rate`: build a profile by choosing between two answers, one keypress at a time."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import err_console, exit_without_waiting
from drift_local.cli.fit_report import pairs
from drift_local.cli.progress import token_progress
from drift_local.cli.settings_flags import settings_with
from drift_local.errors import DriftError


@app.command()
def rate(
    profile: Annotated[str, typer.Option("--profile", "-p", help="The profile to teach (created if missing).")],
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="A file of prompts, one a line (default: 63 bundled everyday prompts).")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of choices to ask for.")] = 20,
    strategy: Annotated[str, typer.Option("--strategy", help="active: ask where the weights are least certain; random: a random attribute.")] = "active",
    seed: options.Seed = 0,
    beta: Annotated[float, typer.Option("--beta", help="Steering strength of the candidates: one attribute at full weight, so gentler than chat's 0.5 keeps both answers fluent.")] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=8, help="Longest candidate answer, in tokens; long enough that most answers can end on their own, so a taste for short ones can show. A cut answer is shown up to its last whole sentence.")] = 160,
    llm: options.Llm = None,
    slm: options.Slm = None,
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="No screen: a simulated user or a command chooses (see --choose-by).")] = False,
    choose_by: Annotated[Optional[str], typer.Option("--choose-by", help="With --non-interactive: a simulated user (fewer-words, more-words, no-contractions, exclamations, questions, anecdotes, bullets, numbers, hedging) or cmd:COMMAND (gets the pair as JSON on stdin, prints 1, 2, t or s).")] = None,
) -> None:
    """Show a prompt and two answers; pick the one you prefer. The weights update after every choice.

    The two answers are written by the LLM steered toward and away from one attribute, chosen
    where the profile's weights are least certain (--strategy active). Both are scored while you
    read, and each choice is stored at once. Keys: 1/2 choose, t tie, s skip, u undo,
    e edit the prompt, q quit.
    """
    from drift_local.cli.rate_screen import interactive, scripted
    from drift_local.sessions.rate import STRATEGIES, bundled_prompts, open_rating, read_prompts
    from drift_local.sessions.simulated_users import SIMULATED_USERS

    if strategy not in STRATEGIES:
        raise DriftError(f"unknown --strategy {strategy!r}", "use active or random")
    if non_interactive and not choose_by:
        raise DriftError("--non-interactive needs --choose-by", "e.g. --choose-by fewer-words")
    if choose_by and choose_by not in SIMULATED_USERS and not choose_by.startswith("cmd:"):
        raise DriftError(f"unknown --choose-by {choose_by!r}", f"use {', '.join(SIMULATED_USERS)} or cmd:COMMAND")
    if not non_interactive and not sys.stdin.isatty():
        raise DriftError("rate needs a terminal", "or use --non-interactive --choose-by ...")
    settings = settings_with(beta=beta, seed=seed)
    pool = read_prompts(prompts) if prompts else bundled_prompts()
    with token_progress("scoring the profile's earlier pairs") as progress:
        session = open_rating(
            settings, profile=profile, llm=llm, slm=slm, prompts=pool, strategy=strategy, n=n, max_tokens=max_tokens, progress=progress
        )
    try:
        scripted(session, choose_by) if non_interactive else interactive(session)
        held = session.pairs_held()
    finally:
        stopped = session.close()
    err_console.print(f"profile '{escape(profile)}' holds {pairs(held)}; see: drift-local profile show {escape(profile)}", highlight=False)
    if not stopped:  # the worker is inside one llama.cpp call; its work is only a cache
        exit_without_waiting()
