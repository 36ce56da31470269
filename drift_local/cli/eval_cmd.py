"""`drift-local eval`: k-shot preference accuracy of Drift and its baselines on a file of pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import console, print_json
from drift_local.cli.progress import token_progress
from drift_local.cli.settings_flags import DecodingFlags, scoring_flags
from drift_local.errors import DriftError


@app.command("eval")
@scoring_flags
def evaluate_command(
    data: Annotated[Path, typer.Option("--data", help="Pairs: JSONL {prompt, chosen, rejected}, PRISM utterances.jsonl, or HH transcripts.")],
    user: Annotated[Optional[str], typer.Option("--user", help="Only this user's pairs (PRISM files).")] = None,
    shots: Annotated[str, typer.Option("--shots", help="Training set sizes, comma separated.")] = "10,20,40",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Random train/test splits per shot count.")] = 20,
    split: Annotated[str, typer.Option("--split", help="prompt: train and test pairs never share a prompt (new prompts, as in real use); random: pairs drawn at random, the paper's way.")] = "prompt",
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also draw accuracy against shots (the paper's Figure 3) to this PNG.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip malformed lines instead of stopping.")] = False,
    json_out: options.Json = False,
    flags: DecodingFlags = None,
) -> None:
    """Train on k pairs, test on held-out ones, for each k and seed; print mean ± std accuracy per method.

    With --split prompt (the default) about half the prompts train and the other half test,
    so every test pair is about a prompt the fit never saw. Methods: fit's default (bt), the
    paper's closed form on summed rewards (paper) and on per-token rewards, logistic
    regression, a length-only baseline fitted on the training pairs, and chance; each row
    also says on how many splits it beat length only. Scores are cached, so a second run is
    quick.
    """
    from drift_local.sessions.evaluate import DEFAULT_METHOD, METHODS, SPLITS, evaluate_file

    if split not in SPLITS:
        raise DriftError(f"unknown --split {split!r}", "use prompt (the default) or random")
    try:
        shot_list = sorted({int(s) for s in shots.split(",") if s.strip()})
    except ValueError:
        raise DriftError(f"--shots takes numbers separated by commas, not {shots!r}") from None
    if plot:
        _pyplot()  # before minutes of scoring, not after
    with token_progress("scoring the pairs") as progress:
        result = evaluate_file(
            flags.settings(), data, user=user, skip_bad=skip_bad, slm=flags.slm, shots=shot_list, seeds=seeds, split=split, progress=progress
        )
    if json_out:
        print_json({
            "data": str(data), "user": user, "n_pairs": result.n_pairs, "n_prompts": result.n_prompts, "split": split,
            "seeds": seeds, "shots": result.shots, "skipped_shots": result.skipped_shots, "default_method": DEFAULT_METHOD,
            "accuracy": {
                m: {
                    str(k): {**dict(zip(("mean", "std"), result.mean_std(m, k))), "splits": result.n_splits(k), "beats_length_only": result.beats_length(m, k)}
                    for k in result.shots
                }
                for m in METHODS
            },
        })
    else:
        _print_table(result, METHODS)
    if plot:
        _plot(result, METHODS, plot)


def _print_table(result, methods) -> None:
    from drift_local.sessions.evaluate import DEFAULT_METHOD, LENGTH_ONLY

    where = "new prompts" if result.split == "prompt" else "random splits"
    table = Table(
        "method", *[f"k={k}" for k in result.shots],
        title=f"held-out preference accuracy on {where}: {result.n_pairs} pairs, {result.n_prompts} prompts (mean ± std; splits that beat length only)",
    )
    for method in methods:
        cells = []
        for k in result.shots:
            mean, std = result.mean_std(method, k)
            beats = "" if method == LENGTH_ONLY else f"  {result.beats_length(method, k)}/{result.n_splits(k)}"
            cells.append(f"{mean:.3f} ± {std:.3f}{beats}")
        table.add_row(f"{method} (default)" if method == DEFAULT_METHOD else method, *cells)
    console.print(table)
    if result.skipped_shots:
        console.print(f"[yellow]skipped k={', '.join(map(str, result.skipped_shots))}: not enough pairs to train on and test on[/]")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DriftError("--plot needs matplotlib", "pip install 'drift-local[plot]'") from None
    return plt


def _plot(result, methods, path: Path) -> None:
    plt = _pyplot()
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
    console.print(f"plot written to {escape(str(path))}", highlight=False)
