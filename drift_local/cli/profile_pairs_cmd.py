"""`drift-local profile add-pair | pairs | rm-pair`: a profile's preference pairs one at a time
(`profile import` adds a file of them)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Optional

import typer

from drift_local.cli import options, profile_views
from drift_local.cli.ask import given_or_asked
from drift_local.cli.common import console, print_json
from drift_local.cli.fit_report import pairs
from drift_local.cli.profile_cmd import Name, profile_app
from drift_local.sessions import profiles

ASK_HINT = "pass --prompt, --chosen and --rejected, or run in a terminal to be asked"


@profile_app.command("add-pair")
def add_pair(
    name: Name,
    prompt: Annotated[Optional[str], typer.Option("--prompt", help="The user message both responses answer.", show_default=False)] = None,
    chosen: Annotated[Optional[str], typer.Option("--chosen", help="The response the person preferred.", show_default=False)] = None,
    rejected: Annotated[Optional[str], typer.Option("--rejected", help="The response they liked less.", show_default=False)] = None,
    tie: Annotated[bool, typer.Option("--tie", help="The two responses were equally good.")] = False,
) -> None:
    """Add one preference pair (the profile is created if it does not exist).

    Fields not given as options are asked for when run in a terminal."""
    from drift_local.store.store import Pair

    texts = [given_or_asked(value, field, ASK_HINT) for value, field in ((prompt, "prompt"), (chosen, "chosen"), (rejected, "rejected"))]
    pair_id, total = profiles.add_pair(name, Pair(*texts, tie=tie, source="cli"))
    console.print(f"added pair #{pair_id} to '{name}'; it holds {pairs(total)} now")


@profile_app.command("pairs")
def list_pairs(name: Name, json_output: options.Json = False) -> None:
    """List a profile's preference pairs, with the ids `profile rm-pair` takes."""
    listed = profiles.list_pairs(name)
    if json_output:
        print_json([asdict(pair) for pair in listed])
    else:
        profile_views.print_pairs(name, listed)


@profile_app.command("rm-pair")
def rm_pair(name: Name, pair_id: Annotated[int, typer.Argument(metavar="ID", help="The pair's id (see: drift-local profile pairs NAME).")]) -> None:
    """Delete one preference pair (the next fit, chat or generate refits without it)."""
    total = profiles.remove_pair(name, pair_id)
    console.print(f"deleted pair #{pair_id} from '{name}'; it holds {pairs(total)} now")
