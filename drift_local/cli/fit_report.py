"""What a fit says a person prefers, as data (`profile show --json`) and as bars (profile show, demo)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.markup import escape
from rich.text import Text

from drift_local.cli.common import console
from drift_local.drift.style import describe_style
from drift_local.store.store import FitRecord, Profile

BAR_WIDTH = 16  # characters on each side of the centre line


def pairs(n: int) -> str:
    return f"{n} pair{'' if n == 1 else 's'}"


def when(iso_time: str) -> str:
    """A stored UTC time, as local time to the minute."""
    return datetime.fromisoformat(iso_time).astimezone().strftime("%Y-%m-%d %H:%M")


def fit_report(profile: Profile, n_pairs: int, fit: FitRecord | None, k: int, stale: bool) -> dict:
    """What `profile show` prints, as JSON-able data."""
    from drift_local.sessions.fit import STABLE_SIGN

    report: dict[str, Any] = {"profile": profile.name, "n_pairs": n_pairs, "fit": None, "attributes": []}
    if fit is None:
        return report
    report["fit"] = {
        "id": fit.id,
        "created": fit.created,
        "model_id": fit.model_id,
        "method": fit.method,
        "reward": fit.reward,
        "n_pairs": fit.n_pairs,
        "top_k": min(k, len(fit.names)),
        "regularization": fit.regularization,
        "length_weight": fit.length_weight,
        "style_weights": fit.style_weights,
        "stale": stale,
    }
    from drift_local.drift.approx import top_k

    top = {fit.names[i] for i in top_k(fit.weights, k)}
    stability = fit.sign_stability or [None] * len(fit.names)
    rows = [
        {
            "name": name, "weight": weight, "preference": preference, "in_top_k": name in top,
            "sign_stability": kept, "stable": kept is None or kept >= STABLE_SIGN,
        }
        for name, weight, preference, kept in zip(fit.names, fit.weights, fit.preference, stability)
    ]
    report["attributes"] = sorted(rows, key=lambda row: -row["weight"])
    return report


def print_fit_report(report: dict) -> None:
    name, fit = report["profile"], report["fit"]
    console.print(f"profile '{name}': {pairs(report['n_pairs'])}")
    refit = f"drift-local fit --profile {name}"
    if fit is None:
        console.print(f"no fit yet; run: {refit}")
        return
    console.print(
        f"fit #{fit['id']} of {when(fit['created'])} on {pairs(fit['n_pairs'])}"
        + (" (fits leave ties out)" if fit["n_pairs"] < report["n_pairs"] and not fit["stale"] else "")
        + f": method {fit['method']}, "
        f"reward {fit['reward']}, model {escape(fit['model_id'])}",
        soft_wrap=True,
    )
    console.print("attribute weights, most preferred first (W-L: mean reward gap per pair):")
    for line in _bar_lines(report["attributes"]):
        console.print(line, soft_wrap=True)
    console.print(f"★ the {fit['top_k']} attributes with the largest |weight|: the ones decoding uses")
    if any(not row["stable"] for row in report["attributes"]):
        console.print("~ sign not stable under resampling of the pairs' prompts: more likely noise than taste")
    if fit["length_weight"]:
        direction = "shorter" if fit["length_weight"] < 0 else "longer"
        console.print(f"answer length: prefers {direction} answers ({fit['length_weight']:+.4f} per token); decoding ends answers accordingly")
    style = describe_style(fit["style_weights"])
    if style:
        console.print(f"style, read off the answers' text: {style}; decoding favours or avoids the tokens that write it", soft_wrap=True)
    if fit["stale"]:
        console.print(f"[yellow]pairs, attributes or the fit method changed since this fit; refit with: {refit}[/]")


def _bar_lines(rows: list[dict]) -> list[Text]:
    scale = max(abs(row["weight"]) for row in rows) or 1.0
    name_width = max(len(row["name"]) for row in rows)
    lines = []
    for row in rows:
        weight = row["weight"]
        bar = "█" * round(abs(weight) / scale * BAR_WIDTH)
        line = Text("★" if row["in_top_k"] else " ", style="bold yellow")
        line.append("~ " if not row["stable"] else "  ", style="dim")
        line.append(row["name"].ljust(name_width) + " ")
        faint = "" if row["stable"] else " dim"
        line.append((bar if weight < 0 else "").rjust(BAR_WIDTH), style="red" + faint)
        line.append("│", style="dim")
        line.append((bar if weight > 0 else "").ljust(BAR_WIDTH), style="green" + faint)
        line.append(f" {weight:+.3f}  W-L {row['preference']:+.2f}", style="dim")
        lines.append(line)
    return lines
