"""`drift-local profile ...`: create profiles, fill them with preference pairs, choose their
attributes, and show what the latest fit says a person prefers. Nothing here loads a model."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from drift_local.cli import options, profile_views
from drift_local.cli.app import app
from drift_local.cli.ask import confirmed
from drift_local.cli.common import console, err_console, print_json
from drift_local.cli.fit_report import fit_report, pairs, print_fit_report
from drift_local.cli.interrupts import held_interrupts
from drift_local.errors import DriftError
from drift_local.sessions import profiles

profile_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(profile_app, name="profile", help="Create profiles, add preference pairs, choose attributes, see what a profile prefers.")

Name = Annotated[str, typer.Argument(metavar="NAME", help="The profile's name: 1-64 letters, digits, '-', '_' or '.'.", show_default=False)]


@profile_app.command()
def create(name: Name) -> None:
    """Create an empty profile that uses the paper's 41 attributes."""
    profiles.create_profile(name)
    console.print(f"created profile '{name}'; add pairs with: drift-local profile import {name} FILE")


@profile_app.command("list")
def list_profiles(json_output: options.Json = False) -> None:
    """List the profiles, with how many pairs each holds and when it was last fitted."""
    summaries = profiles.list_profiles()
    if json_output:
        print_json([asdict(s) for s in summaries])
    else:
        profile_views.print_profiles(summaries)


@profile_app.command()
def show(
    name: Name,
    top: Annotated[Optional[int], typer.Option("--top", min=1, show_default=False, help="How many attributes decoding uses, marked ★ (the largest |weight|). Default: the 'attributes' setting, 7.")] = None,
    json_output: options.Json = False,
) -> None:
    """Show what the latest fit says a profile prefers.

    Each bar is an attribute's weight: how much decoding steers toward (green) or away from
    (red) it, most preferred first; ★ marks the attributes decoding uses. An attribute marked
    ~ has a sign that is not stable: refits on resampled prompts disagree on it in more than
    1 of 10, so it is more likely noise than taste. The mean W-L per pair (the paper's unit
    implicit preference) is printed beside each bar."""
    state = profiles.profile_fit(name)
    report = fit_report(state.profile, state.n_pairs, state.fit, top or state.top_k, state.stale)
    if json_output:
        print_json(report)
    else:
        print_fit_report(report)


@profile_app.command()
def rm(name: Name, yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False) -> None:
    """Delete a profile with all its pairs, attribute choices, fits and chat logs."""
    held = pairs(profiles.count_pairs(name))
    if not (yes or confirmed(f"delete profile '{name}' with its {held}, fits and chats?")):
        console.print(f"kept profile '{name}'")
        return
    profiles.delete_profile(name)
    console.print(f"deleted profile '{name}' ({held})")


@profile_app.command()
def export(name: Name, file: Annotated[str, typer.Argument(metavar="FILE", help="Where to write the JSON; '-' for standard output.", show_default=False)]) -> None:
    """Write a profile's pairs, attribute choices and fit history as JSON.

    `drift-local profile import` reads it all back, into this or a new profile."""
    data = profiles.export_profile(name, None if file == "-" else Path(file))
    if file == "-":
        print_json(data)
    else:
        console.print(f"exported profile '{name}' ({pairs(len(data['pairs']))}) to {escape(file)}")


@profile_app.command("import")
def import_pairs(
    name: Name,
    file: Annotated[Path, typer.Argument(metavar="FILE", show_default=False, help="JSONL of {prompt, chosen, rejected}, a JSON array of those, PRISM utterances.jsonl, HH-RLHF {chosen, rejected} transcripts, or a `profile export` file.")],
    user: Annotated[Optional[str], typer.Option("--user", metavar="ID", help="Import only the pairs of this user_id.", show_default=False)] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed lines instead of importing nothing.")] = False,
    create: Annotated[bool, typer.Option("--create/--no-create", help="Create the profile if it does not exist.")] = True,
) -> None:
    """Add the preference pairs in a file to a profile.

    All pairs are added in one go, or none; pairs the profile already holds are not added twice.
    A `profile export` file brings its custom and disabled attributes and fit history too."""
    with held_interrupts() as interrupted:
        profile_views.print_import(name, profiles.import_file(name, file, user=user, skip_bad=skip_bad, create=create))
    if interrupted:
        err_console.print("Ctrl-C came while the import was being stored; it finished first, and is kept")


@profile_app.command()
def attributes(
    name: Name,
    add: Annotated[Optional[list[str]], typer.Option("--add", metavar="NAME=PROMPT", show_default=False, help="Add a custom attribute: a name and the system prompt that expresses it, e.g. --add 'pirate=You are an AI assistant who talks like a pirate.' Repeatable.")] = None,
    disable: Annotated[Optional[list[str]], typer.Option("--disable", metavar="NAME", show_default=False, help="Switch an attribute off. Repeatable.")] = None,
    enable: Annotated[Optional[list[str]], typer.Option("--enable", metavar="NAME", show_default=False, help="Switch an attribute back on. Repeatable.")] = None,
    remove: Annotated[Optional[list[str]], typer.Option("--remove", metavar="NAME", show_default=False, help="Delete a custom attribute. Repeatable.")] = None,
    json_output: options.Json = False,
) -> None:
    """List a profile's attributes, after applying any changes given.

    Shows each attribute on or off, from the paper or custom; fitting and decoding use those on.

    The changes given apply all together or not at all."""
    listed = profiles.change_attributes(name, add=[_name_and_prompt(spec) for spec in add or []], enable=enable or [], disable=disable or [], remove=remove or [])
    if json_output:
        print_json([asdict(a) for a in listed])
    else:
        profile_views.print_attributes(listed)


def _name_and_prompt(spec: str) -> tuple[str, str]:
    name, equals, prompt = spec.partition("=")
    if not equals:
        raise DriftError(f"--add expects NAME=PROMPT, got {spec!r}", hint="e.g. --add 'pirate=You are an AI assistant who talks like a pirate.'")
    return name.strip(), prompt.strip()
