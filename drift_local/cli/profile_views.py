"""How the `profile` commands show profiles, pairs, attributes and imports (the fit's bars are fit_report.py)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from drift_local.cli.common import console, err_console
from drift_local.cli.fit_report import pairs as n_pairs, when
from drift_local.store.store import Pair, ProfileAttribute, ProfileSummary
from drift_local.sessions.profiles import ImportOutcome


def print_profiles(summaries: list[ProfileSummary]) -> None:
    if not summaries:
        console.print("no profiles yet; create one with: drift-local profile create NAME")
        return
    table = Table("profile", "pairs", "created", "last fit")
    for s in summaries:
        table.add_row(s.name, str(s.n_pairs), when(s.created), when(s.last_fit) if s.last_fit else "never")
    console.print(table)


def print_pairs(name: str, listed: list[Pair]) -> None:
    if not listed:
        console.print(f"profile '{name}' has no pairs yet")
        return
    table = Table("id", "prompt", "chosen", "rejected", "source")
    for p in listed:
        chosen, rejected = (f"(tie) {p.chosen}", f"(tie) {p.rejected}") if p.tie else (p.chosen, p.rejected)
        table.add_row(str(p.id), *(escape(_short(text)) for text in (p.prompt, chosen, rejected, p.source)))
    console.print(table)
    ties = sum(p.tie for p in listed)
    console.print(n_pairs(len(listed)) + (f", {ties} of them ties (fits leave ties out)" if ties else ""))


def print_attributes(listed: list[ProfileAttribute]) -> None:
    table = Table("on", "attribute", "kind", "system prompt")
    for a in listed:
        table.add_row("[green]✓[/]" if a.enabled else "[red]✗[/]", a.name, "custom" if a.custom else "paper", escape(a.prompt))
    console.print(table)
    console.print(f"{sum(a.enabled for a in listed)} of {len(listed)} attributes enabled")


def print_import(name: str, outcome: ImportOutcome) -> None:
    read = outcome.read
    already = f", {len(read.pairs) - outcome.added} already there" if outcome.added < len(read.pairs) else ""
    console.print(
        f"imported {n_pairs(outcome.added)} into '{name}' (format: {read.format}{already}); it holds {n_pairs(outcome.total)} now",
        highlight=False,
    )
    restored = [
        f"{n} {what}"
        for n, what in ((outcome.attributes, "custom attributes"), (outcome.disabled, "attributes switched off"), (outcome.fits, "fits"))
        if n
    ]
    if restored:
        console.print("also restored: " + ", ".join(restored), highlight=False)
    if read.skipped:
        numbers = ", ".join(str(number) for number, _ in read.skipped[:20])
        more = ", ..." if len(read.skipped) > 20 else ""
        err_console.print(f"skipped malformed {read.unit}s ({len(read.skipped)}): {numbers}{more}")


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
