"""`drift-local demo`: the whole idea in two minutes, offline, on the embedded model."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.live import Live
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
    from importlib import resources

    from drift_local.cli.profile_cmd import fit_report, print_fit_report
    from drift_local.cli.progress import token_progress
    from drift_local.config import data_dir
    from drift_local.profiles.importers import read_pairs
    from drift_local.profiles.store import Store
    from drift_local.sessions.fit import fit_profile, steering_from_fit
    from drift_local.sessions.runtime import open_models

    settings = settings_with(beta=beta, seed=seed)
    models = open_models(settings, llm, slm)
    console.print(f"[bold]1.[/] models: LLM [cyan]{models.llm.path.name}[/], sLM [cyan]{models.slm.path.name}[/]")
    pairs_file = resources.files("drift_local.data").joinpath("demo_pairs.jsonl")
    with resources.as_file(pairs_file) as path:
        pairs = read_pairs(path).pairs
    # The demo keeps its own store: the profile is rebuilt each run, the score cache persists.
    with Store.open(data_dir() / "demo.db") as store:
        if any(p.name == "demo" for p in store.list_profiles()):
            store.delete_profile("demo")
        profile = store.create_profile("demo")
        store.add_pairs(profile, pairs)
        console.print(f"[bold]2.[/] a throwaway profile from {len(pairs)} example choices, e.g.:")
        console.print(f"   [dim]Q:[/] {pairs[1].prompt}\n   [green]chosen:[/] {pairs[1].chosen}\n   [red]rejected:[/] {pairs[1].rejected}")
        console.print("[bold]3.[/] Drift Approximation: each answer scored under the base and 41 attribute prompts")
        with token_progress("scoring") as progress:
            outcome = fit_profile(store, profile, models.slm, settings.context(), progress=progress)
        print_fit_report(fit_report(profile, len(pairs), outcome.record, settings.attributes, stale=False))
        steering = steering_from_fit(outcome.record, store, profile, settings.attributes)
    console.print(f"[bold]4.[/] Drift Decoding, β {settings.beta}: the same question, same seed, plain vs steered")
    _side_by_side(models, steering, settings, prompt, seed, max_tokens)


def _side_by_side(models, steering, settings, prompt: str, seed: int, max_tokens: int) -> None:
    from drift_local.drift.sampling import Sampler
    from drift_local.engine.chat import Message
    from drift_local.sessions.decoder import DriftDecoder

    decoder = DriftDecoder(models, steering.k, settings.context())
    texts = {"plain": Text(), "drift": Text()}
    table = Table(title=prompt, expand=True)
    table.add_column("plain LLM", ratio=1)
    table.add_column("Drift: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(steering.names, steering.weights)), ratio=1)
    table.add_row(texts["plain"], texts["drift"])
    conversation = [Message("user", prompt)]
    with Live(table, console=console, refresh_per_second=8):
        for key, steer in (("plain", None), ("drift", steering)):
            sampler = Sampler(settings.sampler())
            for step in decoder.stream(conversation, steer, decoding=settings.decoding(), sampler=sampler, max_tokens=max_tokens):
                texts[key].append(step.text)
