"""`drift-local fit`: Drift Approximation of a profile's attribute weights."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import console, err_console, print_json
from drift_local.cli.fit_report import pairs
from drift_local.cli.progress import token_progress
from drift_local.cli.settings_flags import DecodingFlags, scoring_flags


@app.command()
@scoring_flags
def fit(
    profile: Annotated[str, typer.Option("--profile", "-p", help="The profile to fit.")],
    method: options.Method = None,
    reward: options.Reward = None,
    json_out: options.Json = False,
    flags: DecodingFlags = None,
) -> None:
    """Score the profile's pairs with the small model (only what is not cached) and fit its attribute weights.

    Each response is scored under the base prompt and every attribute prompt; the
    log-probability differences are the zero-shot rewards. Progress shows tokens and ETA;
    Ctrl-C keeps everything scored so far. The default method, bt, is a Bradley–Terry model
    whose strength is chosen from your own pairs; --method paper is the paper's closed form.
    """
    from drift_local.sessions.fit import fit_named, scoring_estimate

    settings = flags.settings(method=method, reward=reward)
    estimate, model_name = scoring_estimate(settings, flags.slm)
    with token_progress(f"scoring with {escape(model_name)}", estimate) as progress:
        outcome = fit_named(settings, profile, flags.slm, progress)
    record = outcome.record
    if outcome.notice:
        err_console.print(f"[yellow]note:[/] {outcome.notice}", soft_wrap=True)
    if json_out:
        print_json({
            "profile": profile, "method": record.method, "reward": record.reward, "model_id": record.model_id,
            "n_pairs": record.n_pairs, "scored_tokens": outcome.scored_tokens,
            "attributes": [{"name": n, "weight": w, "preference": p} for n, w, p in zip(record.names, record.weights, record.preference)],
            "length_weight": record.length_weight, "style_weights": record.style_weights,
            "style_ceilings": record.style_ceilings,
        })
        return
    ties = outcome.ties
    console.print(
        f"fitted [bold]{escape(profile)}[/] on {pairs(record.n_pairs)}" + (f" ({ties} {'tie' if ties == 1 else 'ties'} left out)" if ties else "")
        + f" ({record.method}, {record.reward} rewards; {outcome.scored_tokens:,} tokens scored, the rest cached). "
        f"See: drift-local profile show {escape(profile)}",
        highlight=False,
    )
