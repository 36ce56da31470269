"""rate's screens: the keypress loop (one full-screen view redrawn as work finishes) and the
scripted mode's JSON lines. Every wait polls the keyboard, so `q` always answers at once."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import Future

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from drift_local.cli.common import console
from drift_local.drift.approx import top_k
from drift_local.errors import DriftError
from drift_local.sessions.rate import CHOICES, Candidates, RateSession

KEYS = "[bold]1[/]/[bold]2[/] choose · [bold]t[/] tie · [bold]s[/] skip · [bold]u[/] undo · [bold]e[/] edit prompt · [bold]q[/] quit"
POLL_S = 0.1


class _Quit(Exception):
    pass


class _Screen:
    def __init__(self, session: RateSession, live: Live, keys):
        self.session, self.live, self.keys = session, live, keys
        self.candidates: Candidates | None = None
        self.scoring: Future | None = None
        self.status = ""

    def draw(self, writing: Future | None = None) -> None:
        shown = self.candidates
        if shown is None and writing is not None and hasattr(writing, "partial"):  # the answers as they are written
            shown = Candidates(writing.prompt, "", tuple(text + "▌" for text in writing.partial))
        self.live.update(_view(self.session, shown, self.scoring, self.status), refresh=True)

    def wait(self, future: Future, doing: str, saved: str = ""):
        """The future's result, reading keys meanwhile: q quits, others are told to wait."""
        if future.done():
            return future.result()
        self.status = doing
        self.draw(future)
        while not future.done():
            key = self.keys.read(timeout=POLL_S)
            if key == "q":
                raise _Quit
            if key is not None:
                self.status = f"{doing} {saved}(press q to quit)"
            self.draw(future)
        self.status = ""
        return future.result()

    def run(self) -> None:
        session = self.session
        while session.round < session.n:
            self.candidates, self.scoring = None, None
            self.candidates = self.wait(session.next_candidates(), "writing two answers…")
            self.scoring = session.shown(self.candidates)
            self.answer()

    def answer(self) -> None:
        """Keys for the pair on screen, until a choice or an undo moves on."""
        while True:
            self.draw()
            key = self.keys.read(timeout=0.25)
            if key is None:
                continue
            if key == "q":
                raise _Quit
            if key in CHOICES:
                choice = CHOICES[key]
                self.session.record(self.candidates, choice)
                if choice != "skip":
                    self.wait(self.scoring, "scoring both answers…", "your choice is saved; ")
                self.session.refit(choice)
                return
            if key == "u":
                try:
                    self.session.undo(self.candidates)
                except DriftError as exc:
                    self.status = str(exc)
                    continue
                self.status = "undone: here is that pair again"
                return
            if key == "e":
                self.edit()
            else:
                self.status = f"'{key}' is not a key here"

    def edit(self) -> None:
        self.live.stop()
        with self.keys.paused():
            prompt = console.input("[bold]your prompt:[/] ").strip()
        self.live.start()
        if prompt:
            self.candidates, self.scoring = None, None
            self.candidates = self.wait(self.session.write_now(prompt), "writing two answers…")
            self.scoring = self.session.shown(self.candidates)


def interactive(session: RateSession) -> None:
    from drift_local.cli.keys import KeyReader

    with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False) as live:
        try:
            _Screen(session, live, keys).run()
        except _Quit:
            pass


def _view(session: RateSession, candidates: Candidates | None, scoring: Future | None, status: str):
    rater = session.rater
    header = Text.from_markup(
        f"[bold]drift-local rate[/] · profile [bold]{escape(rater.profile.name)}[/] · choice {session.round + 1} of {session.n} · "
        f"{session.pairs_held()} pairs · {rater.strategy} questions"
    )
    parts = [header]
    if candidates is not None:
        parts.append(Panel(Text(candidates.prompt), title="prompt", border_style="cyan"))
        answers = Table.grid(expand=True, padding=(0, 1))
        answers.add_column(ratio=1)
        answers.add_column(ratio=1)
        answers.add_row(*(Panel(Text(text or "(empty)"), title=str(i)) for i, text in enumerate(candidates.texts, start=1)))
        parts.append(answers)
        if scoring is not None and not scoring.done():
            parts.append(Text("scoring both answers in the background…", style="dim"))
    parts.append(_weights(session))
    parts.append(Text.from_markup(KEYS))
    if status:
        parts.append(Text(status, style="yellow"))
    return Group(*parts)


def _weights(session: RateSession):
    fit = session.rater.fit
    if fit is None:
        return Text("no weights yet: they appear after your first choice", style="dim")
    names = session.rater.attributes.names
    table = Table("attribute", "weight", "moved", title=f"your weights ({fit.n_pairs} pair{'' if fit.n_pairs == 1 else 's'}, ties left out)", expand=False)
    moved = {name: (old, new) for name, old, new in session.moved}
    shown = top_k(fit.weights, 7).tolist()
    for i in shown:
        change = moved.get(names[i])
        arrow = "" if change is None else f"{'↑' if change[1] > change[0] else '↓'} {change[1] - change[0]:+.3f}"
        table.add_row(escape(names[i]), f"{fit.weights[i]:+.3f}", arrow)
    shown_names = {names[i] for i in shown}
    others = [f"{name} {new - old:+.3f}" for name, old, new in session.moved if name not in shown_names]
    return Group(table, Text("also moved: " + ", ".join(others), style="dim")) if others else table


def scripted(session: RateSession, spec: str) -> None:
    """A simulated user or a command chooses; one JSON line per round."""
    from drift_local.sessions.simulated_users import SIMULATED_USERS

    while session.round < session.n:
        candidates = session.next_candidates().result()
        scoring = session.shown(candidates)
        choice = SIMULATED_USERS[spec].choose(*candidates.texts) if spec in SIMULATED_USERS else _ask_command(spec[4:], candidates)
        started = time.perf_counter()
        session.choose(candidates, scoring, choice)
        fit = session.rater.fit
        print(json.dumps({
            "round": session.round, "prompt": candidates.prompt, "attribute": candidates.attribute,
            "answers": candidates.texts, "choice": choice, "update_seconds": round(time.perf_counter() - started, 4),
            "weights": dict(zip(session.rater.attributes.names, fit.weights.round(4).tolist())) if fit else None,
        }), flush=True)


def _ask_command(command: str, candidates: Candidates) -> str:
    payload = json.dumps({"prompt": candidates.prompt, "answers": list(candidates.texts)})
    result = subprocess.run(command, shell=True, input=payload, capture_output=True, text=True, timeout=600)
    answer = result.stdout.strip()
    if result.returncode != 0 or answer not in CHOICES:
        raise DriftError(f"--choose-by command answered {answer!r} (exit {result.returncode})", "it must print 1, 2, t or s")
    return CHOICES[answer]
