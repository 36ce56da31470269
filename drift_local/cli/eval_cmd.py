"""`drift-local eval`: k-shot preference accuracy of Drift and its baselines on a file of pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import console, print_json
from drift_local.cli.progress import token_progress
from drift_local.cli.settings_flags import settings_with
from drift_local.errors import DriftError


@app.command("eval")
def evaluate_command(
    data: Annotated[Path, typer.Option("--data", help="Pairs: JSONL {prompt, chosen, rejected}, PRISM utterances.jsonl, or HH transcripts.")],
    user: Annotated[Optional[str], typer.Option("--user", help="Only this user's pairs (PRISM files).")] = None,
    shots: Annotated[str, typer.Option("--shots", help="Training set sizes, comma separated; the rest of the pairs are the test set.")] = "10,20,40",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Random train/test splits per shot count.")] = 5,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also draw accuracy against shots (the paper's Figure 3) to this PNG.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed lines instead of stopping.")] = False,
    slm: options.Slm = None,
    max_response_tokens: options.MaxResponseTokens = None,
    n_ctx: options.NCtx = None,
    threads: options.Threads = None,
    json_out: options.Json = False,
) -> None:
    """Train on k pairs, test on the rest, for each k and seed; print mean ± std accuracy per method.

    Methods: Drift (QP) with the paper's summed rewards and with per-token (mean) rewards,
    logistic regression on the same features, a length-only baseline, and chance. Scores
    are cached, so a second run is quick.
    """
    from drift_local.attributes import paper_attributes
    from drift_local.profiles.importers import read_pairs
    from drift_local.profiles.store import Store
    from drift_local.sessions.evaluate import METHODS, evaluate
    from drift_local.sessions.rewards import PairText, RewardCache
    from drift_local.sessions.runtime import context_settings, open_slm

    try:
        shot_list = sorted({int(s) for s in shots.split(",") if s.strip()})
    except ValueError:
        raise DriftError(f"--shots takes numbers separated by commas, not {shots!r}") from None
    settings = settings_with(max_response_tokens=max_response_tokens, n_ctx=n_ctx, threads=threads)
    pairs = [PairText(p.prompt, p.chosen, p.rejected) for p in read_pairs(data, user=user, skip_bad=skip_bad).pairs if not p.tie]
    model = open_slm(settings, slm)
    with Store.open() as store:
        attributes = paper_attributes()
        cache = RewardCache(store, model, context_settings(settings), settings.max_response_tokens)
        with token_progress(f"scoring {len(pairs)} pairs") as progress:
            cache.fill_missing(pairs, attributes, progress)
        rewards = {mode: cache.rewards(pairs, attributes, mode) for mode in ("sum", "mean")}
    result = evaluate(rewards, shot_list, seeds)
    if json_out:
        print_json({
            "data": str(data), "user": user, "n_pairs": result.n_pairs, "seeds": seeds, "shots": result.shots,
            "skipped_shots": result.skipped_shots,
            "accuracy": {m: {str(k): dict(zip(("mean", "std"), result.mean_std(m, k))) for k in result.shots} for m in METHODS},
        })
    else:
        _print_table(result, METHODS)
    if plot:
        _plot(result, METHODS, plot)


def _print_table(result, methods) -> None:
    table = Table("method", *[f"k={k}" for k in result.shots], title=f"preference accuracy, {result.n_pairs} pairs, {result.seeds} seeds (mean ± std)")
    for method in methods:
        table.add_row(method, *[f"{m:.3f} ± {s:.3f}" for m, s in (result.mean_std(method, k) for k in result.shots)])
    console.print(table)
    if result.skipped_shots:
        console.print(f"[yellow]skipped k={', '.join(map(str, result.skipped_shots))}: not enough pairs left to test on[/]")
    wins = sum(result.mean_std("drift (mean)", k)[0] > result.mean_std("drift (sum)", k)[0] for k in result.shots)
    console.print(f"per-token (mean) rewards beat summed rewards at {wins} of {len(result.shots)} shot counts")


def _plot(result, methods, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DriftError("--plot needs matplotlib", "pip install 'drift-local[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in methods:
        means, stds = zip(*(result.mean_std(method, k) for k in result.shots))
        ax.errorbar(result.shots, means, yerr=stds, marker="o", capsize=3, label=method)
    ax.set_xlabel("training pairs (k)")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"k-shot preference modeling ({result.n_pairs} pairs, {result.seeds} seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    console.print(f"plot written to {path}")
