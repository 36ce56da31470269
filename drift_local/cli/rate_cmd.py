"""`drift-local rate`: build a profile by choosing between two answers, one keypress at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import console, err_console
from drift_local.cli.progress import token_progress
from drift_local.cli.settings_flags import settings_with
from drift_local.errors import DriftError

KEYS = "[bold]1[/]/[bold]2[/] choose · [bold]t[/] tie · [bold]s[/] skip · [bold]u[/] undo · [bold]e[/] edit prompt · [bold]q[/] quit"


@app.command()
def rate(
    profile: Annotated[str, typer.Option("--profile", "-p", help="The profile to teach (created if missing).")],
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="A file of prompts, one a line (default: 63 bundled everyday prompts).")] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Number of choices to ask for.")] = 20,
    strategy: Annotated[str, typer.Option("--strategy", help="active: ask where the weights are least certain; random: a random attribute.")] = "active",
    seed: options.Seed = 0,
    beta: Annotated[float, typer.Option("--beta", help="Steering strength of the candidates: one attribute at full weight, so gentler than chat's 0.5 keeps both answers fluent.")] = 1.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=8, help="Longest candidate answer, in tokens; long enough that most answers can end on their own, so a taste for short ones can show. A cut answer is shown up to its last whole sentence.")] = 160,
    llm: options.Llm = None,
    slm: options.Slm = None,
    non_interactive: Annotated[bool, typer.Option("--non-interactive", help="No screen: a simulated user or a command chooses (see --choose-by).")] = False,
    choose_by: Annotated[Optional[str], typer.Option("--choose-by", help="With --non-interactive: a simulated user (fewer-words, more-words, no-contractions, exclamations, questions, anecdotes, bullets, numbers, hedging) or cmd:COMMAND (gets the pair as JSON on stdin, prints 1, 2, t or s).")] = None,
) -> None:
    """Show a prompt and two answers; pick the one you prefer. The weights update after every choice.

    The two answers are written by the LLM steered toward and away from one attribute, chosen
    where the profile's weights are least certain (--strategy active). Both are scored while you
    read, and each choice is stored at once. Keys: 1/2 choose, t tie, s skip, u undo,
    e edit the prompt, q quit.
    """
    from drift_local.profiles.store import Store
    from drift_local.sessions.rate import RateWorker, Rater, bundled_prompts, prompt_cycle, read_prompts
    from drift_local.sessions.rewards import RewardCache
    from drift_local.sessions.runtime import open_models

    from drift_local.sessions.simulated_users import SIMULATED_USERS

    if non_interactive and not choose_by:
        raise DriftError("--non-interactive needs --choose-by", "e.g. --choose-by fewer-words")
    if choose_by and choose_by not in SIMULATED_USERS and not choose_by.startswith("cmd:"):
        raise DriftError(f"unknown --choose-by {choose_by!r}", f"use {', '.join(SIMULATED_USERS)} or cmd:COMMAND")
    if not non_interactive and not sys.stdin.isatty():
        raise DriftError("rate needs a terminal", "or use --non-interactive --choose-by ...")
    settings = settings_with(beta=beta, seed=seed)
    seed = settings.seed
    pool = read_prompts(prompts) if prompts else bundled_prompts()
    models = open_models(settings, llm, slm)
    ctx_settings = settings.context()
    store = Store.open()
    try:
        target = _profile(store, profile)
        attributes = store.active_attributes(target)
        cache = RewardCache(store, models.slm, ctx_settings, settings.max_response_tokens)
        rater = Rater(store, target, attributes, cache, strategy=strategy, method=settings.method, reward=settings.reward, seed=seed)
        _score_existing(rater)
        rater.refit()
        worker = RateWorker(models, attributes, ctx_settings, cap=settings.max_response_tokens, decoding=settings.decoding(), max_tokens=max_tokens)
        try:
            session = _Session(rater, worker, prompt_cycle(pool, seed), n)
            if non_interactive:
                session.scripted(choose_by)
            else:
                session.interactive()
        finally:
            worker.close()
        err_console.print(f"profile '{profile}' holds {store.count_pairs(target)} pairs; see: drift-local profile show {profile}")
    finally:
        store.close()


def _profile(store, name: str):
    if not any(p.name == name for p in store.list_profiles()):
        return store.create_profile(name)
    return store.get_profile(name)


def _score_existing(rater) -> None:
    from drift_local.sessions.fit import profile_pairs

    with token_progress("scoring the profile's earlier pairs") as progress:
        rater.cache.fill_missing(profile_pairs(rater.store, rater.profile), rater.attributes, progress)


class _Session:
    def __init__(self, rater, worker, prompts, n: int):
        self.rater, self.worker, self.prompts, self.n = rater, worker, prompts, n
        self.round = 0
        self.moved: list = []
        self.status = ""
        self._pending = self._write(next(self.prompts))

    def _write(self, prompt: str):
        attribute, seed = self.rater.ask_about()
        return self.worker.write(prompt, attribute, seed)

    def _next_pair(self):
        """The candidates written in the background; start scoring them, then write the next pair."""
        candidates = self._pending.result()
        scoring = self.worker.score(candidates)
        self._pending = self._write(next(self.prompts))
        return candidates, scoring

    def _apply(self, candidates, scoring, choice: str) -> None:
        from drift_local.sessions.rate import moved

        before = self.rater.fit
        if choice != "skip":
            scoring.result()  # scored while the person read; usually done already
        after = self.rater.choose(candidates, choice)
        self.moved = moved(before, after, self.rater.attributes.names) if choice != "skip" else []
        self.round += choice != "skip"

    # --- scripted ------------------------------------------------------------------------
    def scripted(self, spec: str) -> None:
        from drift_local.sessions.simulated_users import SIMULATED_USERS

        while self.round < self.n:
            candidates, scoring = self._next_pair()
            choice = SIMULATED_USERS[spec].choose(*candidates.texts) if spec in SIMULATED_USERS else _ask_command(spec[4:], candidates)
            started = time.perf_counter()
            self._apply(candidates, scoring, choice)
            fit = self.rater.fit
            print(json.dumps({
                "round": self.round, "prompt": candidates.prompt, "attribute": candidates.attribute,
                "answers": candidates.texts, "choice": choice, "update_seconds": round(time.perf_counter() - started, 4),
                "weights": dict(zip(self.rater.attributes.names, fit.weights.round(4).tolist())) if fit else None,
            }), flush=True)

    # --- interactive ---------------------------------------------------------------------
    def interactive(self) -> None:
        from drift_local.cli.keys import KeyReader

        with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False) as live:
            while self.round < self.n:
                self.status = "writing two answers…"
                live.update(self._screen(None), refresh=True)
                candidates, scoring = self._next_pair()
                self.status = ""
                while True:
                    live.update(self._screen(candidates, scoring), refresh=True)
                    key = keys.read(timeout=0.25)
                    if key is None:
                        continue
                    if key == "q":
                        return
                    if key in ("1", "2", "t", "s"):
                        from drift_local.sessions.rate import CHOICES

                        self.status = "scoring…" if not scoring.done() else ""
                        live.update(self._screen(candidates, scoring), refresh=True)
                        self._apply(candidates, scoring, CHOICES[key])
                        break
                    if key == "u":
                        self._undo()
                    if key == "e":
                        candidates, scoring = self._edit(live, keys, candidates, scoring)

    def _undo(self) -> None:
        from drift_local.sessions.rate import moved

        try:
            before = self.rater.fit
            after = self.rater.undo()
            self.moved = moved(before, after, self.rater.attributes.names)
            self.round -= 1
            self.status = "undone"
        except DriftError as exc:
            self.status = str(exc)

    def _edit(self, live, keys, candidates, scoring):
        live.stop()
        with keys.paused():
            prompt = console.input("[bold]your prompt:[/] ").strip()
        live.start()
        if not prompt:
            return candidates, scoring
        self.status = "writing two answers…"
        live.update(self._screen(None), refresh=True)
        attribute, seed = self.rater.ask_about()
        candidates = self.worker.write(prompt, attribute, seed)
        # the pre-written next pair stays queued behind; this one jumps in now
        candidates = candidates.result()
        self.status = ""
        return candidates, self.worker.score(candidates)

    def _screen(self, candidates, scoring=None):
        rater = self.rater
        header = Text.from_markup(
            f"[bold]drift-local rate[/] · profile [bold]{rater.profile.name}[/] · choice {self.round + 1} of {self.n} · "
            f"{rater.store.count_pairs(rater.profile)} pairs · {rater.strategy} questions"
        )
        parts = [header]
        if candidates is not None:
            parts.append(Panel(candidates.prompt, title="prompt", border_style="cyan"))
            answers = Table.grid(expand=True, padding=(0, 1))
            answers.add_column(ratio=1)
            answers.add_column(ratio=1)
            answers.add_row(Panel(candidates.texts[0] or "(empty)", title="1"), Panel(candidates.texts[1] or "(empty)", title="2"))
            parts.append(answers)
            if scoring is not None and not scoring.done():
                parts.append(Text("scoring both answers in the background…", style="dim"))
        parts.append(self._weights())
        parts.append(Text.from_markup(KEYS))
        if self.status:
            parts.append(Text(self.status, style="yellow"))
        return Group(*parts)

    def _weights(self):
        fit = self.rater.fit
        if fit is None:
            return Text("no weights yet: they appear after your first choice", style="dim")
        names = self.rater.attributes.names
        table = Table("attribute", "weight", "moved", title=f"your weights ({fit.n_pairs} pairs)", expand=False)
        moved = {name: (old, new) for name, old, new in self.moved}
        shown = sorted(range(len(names)), key=lambda i: -abs(fit.weights[i]))[:7]
        for i in shown:
            change = moved.get(names[i])
            arrow = "" if change is None else f"{'↑' if change[1] > change[0] else '↓'} {change[1] - change[0]:+.3f}"
            table.add_row(names[i], f"{fit.weights[i]:+.3f}", arrow)
        shown_names = {names[i] for i in shown}
        others = [f"{name} {new - old:+.3f}" for name, old, new in self.moved if name not in shown_names]
        return Group(table, Text("also moved: " + ", ".join(others), style="dim")) if others else table


def _ask_command(command: str, candidates) -> str:
    from drift_local.sessions.rate import CHOICES

    payload = json.dumps({"prompt": candidates.prompt, "answers": list(candidates.texts)})
    result = subprocess.run(command, shell=True, input=payload, capture_output=True, text=True, timeout=600)
    answer = result.stdout.strip()
    if result.returncode != 0 or answer not in CHOICES:
        raise DriftError(f"--choose-by command answered {answer!r} (exit {result.returncode})", "it must print 1, 2, t or s")
    return CHOICES[answer]
