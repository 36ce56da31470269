"""`drift-local demo`: the whole idea in two minutes, offline, on the embedded model."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import console
from drift_local.cli.settings_flags import settings_with

DEMO_PROMPT = "How do I make a good cup of tea?"


@app.command()
def demo(
    prompt: Annotated[str, typer.Option("--prompt", help="The question answered plainly and with Drift.")] = DEMO_PROMPT,
    llm: options.Llm = None,
    slm: options.Slm = None,
    beta: options.Beta = None,
    seed: options.Seed = 7,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Length of each answer.")] = 120,
) -> None:
    """Build a throwaway profile from a few bundled example pairs, show its attribute weights,
    then answer one prompt plainly and with Drift, side by side.

    The example user prefers short, plain answers over gushing, exclamatory ones. Scores are
    cached, so a second run is instant until the answers.
    """
    from drift_local.cli.fit_report import fit_report, print_fit_report
    from drift_local.cli.progress import token_progress
    from drift_local.sessions.demo import demo_pairs, fit_demo, plain_and_steered
    from drift_local.sessions.runtime import open_models

    settings = settings_with(beta=beta, seed=seed)
    models = open_models(settings, llm, slm)
    console.print(f"[bold]1.[/] models: LLM [cyan]{escape(models.llm.path.name)}[/], sLM [cyan]{escape(models.slm.path.name)}[/]")
    example = demo_pairs()[1]
    console.print(f"[bold]2.[/] a throwaway profile from {len(demo_pairs())} example choices, e.g.:")
    console.print(f"   [dim]Q:[/] {escape(example.prompt)}\n   [green]chosen:[/] {escape(example.chosen)}\n   [red]rejected:[/] {escape(example.rejected)}")
    console.print("[bold]3.[/] Drift Approximation: each answer scored under the base and 41 attribute prompts")
    with token_progress("scoring") as progress:
        demo = fit_demo(models, settings, progress)
    print_fit_report(fit_report(demo.profile, len(demo.pairs), demo.outcome.record, settings.attributes, stale=False))
    console.print(f"[bold]4.[/] Drift Decoding, β {settings.beta}: the same question, same seed, plain vs steered")
    steering = demo.steering
    texts = {"plain": Text(), "drift": Text()}
    table = Table(title=escape(prompt), expand=True)
    table.add_column("plain LLM", ratio=1)
    table.add_column(escape("Drift: " + steering.describe()), ratio=1)
    table.add_row(texts["plain"], texts["drift"])
    with Live(table, console=console, refresh_per_second=8):
        for key, text in plain_and_steered(models, steering, settings, prompt, max_tokens):
            texts[key].append(text)
    console.print()  # Live leaves the cursor at the table's end
    console.print(
        "[dim]What this can show: SmolLM2-135M, both writer and judge here, shows Drift changing an answer's style "
        "(shorter, calmer), not making it wiser, and a 135M judge's weights are noisy (the ~ marks). "
        "For real use: drift-local models pull llama-3.1-8b and llama-3.2-1b.[/]",
        soft_wrap=True,
    )
