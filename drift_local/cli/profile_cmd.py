"""`drift-local profile ...`: create profiles, fill them with preference pairs, choose their
attributes, and show what the latest fit says a person prefers. Nothing here loads a model."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from drift_local.cli.app import app
from drift_local.cli.common import console, err_console, print_json
from drift_local.cli.fit_report import fit_report, pairs as _pairs, print_fit_report, when as _when
from drift_local.cli.interrupts import held_interrupts
from drift_local.config import load_settings
from drift_local.errors import DriftError
from drift_local.profiles.health import replace_durably
from drift_local.profiles.store import PairIn, Store

profile_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(
    profile_app,
    name="profile",
    help="Create profiles, add preference pairs, choose attributes, see what a profile prefers.",
)

ProfileName = Annotated[
    str,
    typer.Argument(
        metavar="NAME", help="The profile's name: 1-64 letters, digits, '-', '_' or '.'.", show_default=False
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@profile_app.command()
def create(name: ProfileName) -> None:
    """Create an empty profile that uses the paper's 41 attributes."""
    from drift_local.sessions.profiles import create_profile

    create_profile(name)
    console.print(f"created profile '{name}'; add pairs with: drift-local profile import {name} FILE")


@profile_app.command("list")
def list_profiles(json_output: JsonFlag = False) -> None:
    """List the profiles, with how many pairs each holds and when it was last fitted."""
    with Store.open() as store:
        summaries = store.list_profiles()
    if json_output:
        print_json([asdict(summary) for summary in summaries])
        return
    if not summaries:
        console.print("no profiles yet; create one with: drift-local profile create NAME")
        return
    table = Table("profile", "pairs", "created", "last fit")
    for s in summaries:
        table.add_row(s.name, str(s.n_pairs), _when(s.created), _when(s.last_fit) if s.last_fit else "never")
    console.print(table)


@profile_app.command()
def show(
    name: ProfileName,
    top: Annotated[
        Optional[int],
        typer.Option(
            "--top",
            min=1,
            show_default=False,
            help="How many attributes decoding uses, marked ★ (the largest |weight|). "
            "Default: the 'attributes' setting, 7.",
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Show what the latest fit says a profile prefers.

    Each bar is an attribute's weight: how much decoding steers toward (green) or away from
    (red) it, most preferred first; ★ marks the attributes decoding uses. An attribute marked
    ~ has a sign that is not stable: refits on resampled prompts disagree on it in more than
    1 of 10, so it is more likely noise than taste. The mean W-L per pair (the paper's unit
    implicit preference) is printed beside each bar."""
    from drift_local.sessions.fit import fit_status

    settings = load_settings()
    with Store.open() as store:
        profile = store.get_profile(name)
        n_pairs = store.count_pairs(profile)
        fit, stale = fit_status(store, profile, settings.method, settings.reward)
    report = fit_report(profile, n_pairs, fit, top or settings.attributes, fit is not None and stale)
    if json_output:
        print_json(report)
    else:
        print_fit_report(report)


@profile_app.command()
def rm(
    name: ProfileName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
) -> None:
    """Delete a profile with all its pairs, attribute choices, fits and chat logs."""
    from drift_local.sessions.profiles import delete_profile

    with Store.open() as store:
        n_pairs = store.count_pairs(store.get_profile(name))
    if not (yes or _confirmed(f"delete profile '{name}' with its {_pairs(n_pairs)}, fits and chats?")):
        console.print(f"kept profile '{name}'")
        return
    delete_profile(name)
    console.print(f"deleted profile '{name}' ({_pairs(n_pairs)})")


@profile_app.command()
def export(
    name: ProfileName,
    file: Annotated[
        str,
        typer.Argument(metavar="FILE", help="Where to write the JSON; '-' for standard output.", show_default=False),
    ],
) -> None:
    """Write a profile's pairs, attribute choices and fit history as JSON.

    `drift-local profile import` reads it all back, into this or a new profile."""
    with Store.open() as store:
        data = store.export_profile(name)
    if file == "-":
        print_json(data)
        return
    _write_json(Path(file), data)
    console.print(f"exported profile '{name}' ({_pairs(len(data['pairs']))}) to {escape(file)}")


@profile_app.command("import")
def import_pairs(
    name: ProfileName,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="JSONL of {prompt, chosen, rejected}, a JSON array of those, PRISM utterances.jsonl, "
            "HH-RLHF {chosen, rejected} transcripts, or a `profile export` file.",
            show_default=False,
        ),
    ],
    user: Annotated[
        Optional[str],
        typer.Option("--user", metavar="ID", help="Import only the pairs of this user_id.", show_default=False),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip malformed lines instead of importing nothing.")
    ] = False,
    create: Annotated[
        bool, typer.Option("--create/--no-create", help="Create the profile if it does not exist.")
    ] = True,
) -> None:
    """Add the preference pairs in a file to a profile.

    All pairs are added in one go, or none; pairs the profile already holds are not added twice.
    A `profile export` file brings its custom and disabled attributes and fit history too."""
    from drift_local.sessions.profiles import import_file

    with held_interrupts() as interrupted:
        outcome = import_file(name, file, user=user, skip_bad=skip_bad, create=create)
        result = outcome.read
        already = f", {len(result.pairs) - outcome.added} already there" if outcome.added < len(result.pairs) else ""
        console.print(
            f"imported {_pairs(outcome.added)} into '{name}' (format: {result.format}{already}); it holds {_pairs(outcome.total)} now",
            highlight=False,
        )
        restored = [f"{n} {what}" for n, what in ((outcome.attributes, "custom attributes"), (outcome.disabled, "attributes switched off"), (outcome.fits, "fits")) if n]
        if restored:
            console.print("also restored: " + ", ".join(restored), highlight=False)
        if result.skipped:
            numbers = ", ".join(str(number) for number, _ in result.skipped[:20])
            more = ", ..." if len(result.skipped) > 20 else ""
            err_console.print(f"skipped malformed {result.unit}s ({len(result.skipped)}): {numbers}{more}")
    if interrupted:
        err_console.print("Ctrl-C came while the import was being stored; it finished first, and is kept")


@profile_app.command("add-pair")
def add_pair(
    name: ProfileName,
    prompt: Annotated[
        Optional[str], typer.Option("--prompt", help="The user message both responses answer.", show_default=False)
    ] = None,
    chosen: Annotated[
        Optional[str], typer.Option("--chosen", help="The response the person preferred.", show_default=False)
    ] = None,
    rejected: Annotated[
        Optional[str], typer.Option("--rejected", help="The response they liked less.", show_default=False)
    ] = None,
    tie: Annotated[bool, typer.Option("--tie", help="The two responses were equally good.")] = False,
) -> None:
    """Add one preference pair (the profile is created if it does not exist).

    Fields not given as options are asked for when run in a terminal."""
    from drift_local.sessions.profiles import add_pair as store_pair

    pair = PairIn(
        _given_or_asked(prompt, "prompt"), _given_or_asked(chosen, "chosen"), _given_or_asked(rejected, "rejected"),
        tie=tie, source="cli",
    )
    pair_id, total = store_pair(name, pair)
    console.print(f"added pair #{pair_id} to '{name}'; it holds {_pairs(total)} now")


@profile_app.command("pairs")
def list_pairs(name: ProfileName, json_output: JsonFlag = False) -> None:
    """List a profile's preference pairs, with the ids `profile rm-pair` takes."""
    with Store.open() as store:
        pairs = store.list_pairs(store.get_profile(name))
    if json_output:
        print_json([asdict(pair) for pair in pairs])
        return
    if not pairs:
        console.print(f"profile '{name}' has no pairs yet")
        return
    table = Table("id", "prompt", "chosen", "rejected", "source")
    for p in pairs:
        chosen, rejected = (f"(tie) {p.chosen}", f"(tie) {p.rejected}") if p.tie else (p.chosen, p.rejected)
        table.add_row(str(p.id), *(escape(_short(text)) for text in (p.prompt, chosen, rejected, p.source)))
    console.print(table)
    ties = sum(p.tie for p in pairs)
    console.print(f"{_pairs(len(pairs))}" + (f", {ties} of them ties (fits leave ties out)" if ties else ""))


@profile_app.command("rm-pair")
def rm_pair(
    name: ProfileName,
    pair_id: Annotated[int, typer.Argument(metavar="ID", help="The pair's id (see: drift-local profile pairs NAME).")],
) -> None:
    """Delete one preference pair (the next fit, chat or generate refits without it)."""
    from drift_local.sessions.profiles import remove_pair

    total = remove_pair(name, pair_id)
    console.print(f"deleted pair #{pair_id} from '{name}'; it holds {_pairs(total)} now")


@profile_app.command()
def attributes(
    name: ProfileName,
    add: Annotated[
        Optional[list[str]],
        typer.Option(
            "--add",
            metavar="NAME=PROMPT",
            show_default=False,
            help="Add a custom attribute: a name and the system prompt that expresses it, e.g. "
            "--add 'pirate=You are an AI assistant who talks like a pirate.' Repeatable.",
        ),
    ] = None,
    disable: Annotated[
        Optional[list[str]],
        typer.Option("--disable", metavar="NAME", show_default=False, help="Switch an attribute off. Repeatable."),
    ] = None,
    enable: Annotated[
        Optional[list[str]],
        typer.Option("--enable", metavar="NAME", show_default=False, help="Switch an attribute back on. Repeatable."),
    ] = None,
    remove: Annotated[
        Optional[list[str]],
        typer.Option("--remove", metavar="NAME", show_default=False, help="Delete a custom attribute. Repeatable."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """List a profile's attributes, after applying any changes given.

    Shows each attribute on or off, from the paper or custom; fitting and decoding use those on.

    The changes given apply all together or not at all."""
    from drift_local.sessions.profiles import change_attributes

    listed = change_attributes(
        name, add=[_split_attribute_spec(spec) for spec in add or []], enable=enable or [], disable=disable or [], remove=remove or []
    )
    if json_output:
        print_json([asdict(attribute) for attribute in listed])
        return
    table = Table("on", "attribute", "kind", "system prompt")
    for a in listed:
        on = "[green]✓[/]" if a.enabled else "[red]✗[/]"
        table.add_row(on, a.name, "custom" if a.custom else "paper", escape(a.prompt))
    console.print(table)
    console.print(f"{sum(a.enabled for a in listed)} of {len(listed)} attributes enabled")


# -- helpers --------------------------------------------------------------------------------


def _confirmed(question: str) -> bool:
    if not sys.stdin.isatty():
        raise DriftError("not deleting without confirmation", hint="pass --yes to delete without a terminal")
    return typer.confirm(question, default=False)


def _given_or_asked(value: str | None, field: str) -> str:
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise DriftError(
            f"missing --{field}", hint="pass --prompt, --chosen and --rejected, or run in a terminal to be asked"
        )
    return typer.prompt(field)


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _split_attribute_spec(spec: str) -> tuple[str, str]:
    name, equals, prompt = spec.partition("=")
    if not equals:
        raise DriftError(
            f"--add expects NAME=PROMPT, got {spec!r}",
            hint="e.g. --add 'pirate=You are an AI assistant who talks like a pirate.'",
        )
    return name.strip(), prompt.strip()


def _write_json(path: Path, data: Any) -> None:
    """Write all of it or nothing: a crash mid-write leaves any older file intact."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        replace_durably(partial, path)  # fsynced before and after the rename: a power cut keeps one whole file
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DriftError(f"cannot write {path}: {exc.strerror or exc}") from None
