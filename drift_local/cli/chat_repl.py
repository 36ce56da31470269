"""The chat's screen: line input with history, streamed answers, and the slash commands.

Input is prompt_toolkit's (line editing, Up/Down history kept in drift-local's data folder,
Ctrl-R search) when stdin is a terminal, plain lines otherwise (pipes, scripts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable, Iterator

from rich.markup import escape
from rich.table import Table

from drift_local.cli.common import console, error_line, note
from drift_local.drift.style import describe_style
from drift_local.errors import DriftError
from drift_local.sessions.chat import CHAT_SETTINGS, ChatSession
from drift_local.sessions.decoder import Answer

HELP = """[bold]/help[/]              this list
[bold]/system [TEXT][/]     show or set your system prompt for the LLM
[bold]/set [KEY VALUE][/]   show or change sampling: temperature, top_p, top_k, min_p, repeat_penalty, no_repeat_ngram, dry_multiplier, seed, max_tokens
[bold]/beta [X][/]          show or set the personalization strength (smaller steers harder; inf = off)
[bold]/attrs[/]             the active attributes and their weights
[bold]/plain[/]             toggle Drift off and on, to compare by feel
[bold]/compare[/]           plain and Drift answers to your last message
[bold]/prefer 1|2[/]        after /compare: store your choice as a preference pair (teaches the profile; refits while you chat)
[bold]/save FILE[/]         write this conversation (Markdown, or JSON for .json)
[bold]/clear[/]             start a new conversation
[bold]/bye[/]               quit (Ctrl-D too); Ctrl-C stops the current answer"""

PROMPT = "you> "


def history_path() -> Path:
    from drift_local.config import data_dir

    return data_dir() / "chat_history"


def line_reader(input=None, output=None, status: Callable[[], str | None] = lambda: None) -> Callable[[], str]:
    """A function that reads one line (raises EOFError at the end, KeyboardInterrupt on Ctrl-C).
    In a terminal, `status()` (when not None) shows below the line, updated as it changes."""
    if input is None and not sys.stdin.isatty():
        return lambda: _plain_line()
    from prompt_toolkit import PromptSession
    from prompt_toolkit.formatted_text import HTML
    from prompt_toolkit.history import FileHistory

    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    session = PromptSession(history=FileHistory(str(path)), input=input, output=output)

    def read() -> str:
        shown = status() is not None  # no empty bar when there is nothing to say
        toolbar = (lambda: status() or "") if shown else None
        return session.prompt(HTML("<ansigreen><b>you&gt;</b></ansigreen> "), bottom_toolbar=toolbar, refresh_interval=0.5 if shown else 0)

    return read


def _plain_line() -> str:
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\n")


def run_chat(session: ChatSession, models, read_line: Callable[[], str] | None = None) -> None:
    _banner(session, models)
    read_line = read_line or line_reader(status=lambda: refit_status(session))
    while True:
        _refit_news(session)
        try:
            line = read_line().strip()
        except EOFError:
            console.print()
            return
        except KeyboardInterrupt:  # at the prompt, as in a shell: drop the line, stay
            console.print("[dim](Ctrl-D or /bye quits)[/]")
            continue
        if not line:
            continue
        if line.startswith("/"):
            if _command(session, line) == "bye":
                return
            continue
        try:
            dropped = session.fit_history(reserve=min(session.settings.max_tokens, session.decoder.n_ctx // 4))
        except DriftError as exc:
            error_line(str(exc))
            continue
        if dropped:
            note(f"the conversation neared the context size; dropped the {dropped} oldest exchange(s)")
        _refit_news(session)  # a refit that finished while the line was typed steers this answer
        answer = Answer()
        _stream("[bold cyan]ai>[/] ", session.ask(line, answer), answer)


def _banner(session: ChatSession, models) -> None:
    who = f"profile [bold]{escape(session.profile.name)}[/]" if session.profile else "no profile (plain LLM)"
    console.print(
        f"[dim]{escape(models.llm.path.name)}[/] steered by [dim]{escape(models.slm.path.name)}[/] · {who} · "
        f"β {session.settings.beta} · conversation #{session.conversation_id}",
        highlight=False,
    )
    if session.decoder.llm_chat.uses_fallback:
        note("the model has no chat template; using a plain 'User:/Assistant:' format")
    if session.steering is not None:
        console.print(f"[dim]steered by: {escape(session.steering.describe())}[/]")
    if session.system:
        console.print(f"[dim]system: {escape(session.system)}[/]", highlight=False)
    if session.state.history:
        console.print(f"[dim]continuing: {len(session.state.history)} earlier messages[/]")
    console.print("[dim]/help for commands, /bye to quit[/]")


def _stream(label: str, steps: Iterator, answer: Answer) -> None:
    console.print(label, end="")
    try:
        for step in steps:
            sys.stdout.write(step.text)
            sys.stdout.flush()
    except KeyboardInterrupt:
        steps.close()  # runs the session's logging of the partial answer
        answer.stop = "interrupted"
        sys.stdout.write(" [stopped]")
    sys.stdout.write("\n")
    sys.stdout.flush()
    if answer.stop == "context":
        note("the answer reached the context size")


def _command(session: ChatSession, line: str) -> str | None:
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    try:
        if name in ("/bye", "/quit", "/exit"):
            return "bye"
        if name in ("/help", "/?"):
            console.print(HELP)
        elif name == "/system":
            if arg:
                session.set_system(arg)
            console.print(f"system: {escape(session.system)}" if session.system else "system: (none: the model's default)", highlight=False)
        elif name == "/set":
            _set(session, arg)
        elif name == "/beta":
            if arg:
                session.set("beta", arg)
            console.print(f"β = {session.settings.beta}")
        elif name == "/attrs":
            _show_attributes(session)
        elif name == "/plain":
            session.state.drift_on = not session.state.drift_on
            console.print("Drift on" if session.state.drift_on else "plain LLM (Drift off)")
        elif name == "/compare":
            _compare(session)
        elif name == "/prefer":
            _prefer(session, arg)
        elif name == "/save":
            _save(session, arg)
        elif name == "/clear":
            session.clear()
            console.print(f"cleared; conversation #{session.conversation_id}")
        else:
            raise DriftError(f"unknown command {name}", "/help lists them")
    except DriftError as exc:
        error_line(str(exc))
    return None


def _set(session: ChatSession, arg: str) -> None:
    key, _, value = arg.partition(" ")
    if key and not value.strip():
        raise DriftError(f"/set {key} needs a value", f"e.g. /set {key} {getattr(session.settings, key, 1)}")
    if key:
        session.set(key, value.strip())
    shown = {k: getattr(session.settings, k) for k in (*CHAT_SETTINGS, "beta")}
    if shown["seed"] is None:
        shown["seed"] = "random"
    console.print("  ".join(f"{k} {v}" for k, v in shown.items()), highlight=False)


def _show_attributes(session: ChatSession) -> None:
    if session.steering is None:
        console.print("no profile weights: plain decoding")
        return
    table = Table("attribute", "weight", "system prompt", title=f"active attributes (β {session.settings.beta})")
    for name, weight, prompt in zip(session.steering.names, session.steering.weights, session.steering.prompts):
        table.add_row(escape(name), f"{weight:+.3f}", escape(prompt))
    console.print(table)
    style = describe_style(session.steering.style())
    if style:
        console.print(f"style, read off the text: {escape(style)}")


def _compare(session: ChatSession) -> None:
    plain, drift = Answer(), Answer()
    plain_steps, drift_steps = session.compare(plain, drift)
    _stream("[bold]1 plain>[/] ", plain_steps, plain)
    _stream("[bold]2 drift>[/] ", drift_steps, drift)
    session.remember_comparison(plain, drift)
    console.print("[dim]/prefer 1 or /prefer 2 stores your choice in the profile[/]")


def _prefer(session: ChatSession, arg: str) -> None:
    from drift_local.cli.fit_report import pairs
    from drift_local.cli.interrupts import held_interrupts

    if arg not in ("1", "2"):
        raise DriftError("/prefer takes 1 (plain) or 2 (Drift)")
    with held_interrupts():  # a Ctrl-C must not split storing the pair from saying so
        stored = session.prefer(int(arg))
        console.print(
            f"stored pair #{stored.pair_id} in '{escape(session.profile.name)}' ({pairs(stored.n_pairs)} now); "
            "refitting in the background: chat on, the next answer after it is ready uses the new weights",
            highlight=False,
        )


def refit_status(session: ChatSession) -> str | None:
    """One line on the refit under way, for below the input line; None when there is none."""
    refit = session.refitting()
    if refit is None:
        return " refit ready: your next message is answered with the new weights " if session.refit_ready() else None
    if refit.total and refit.done < refit.total:
        return f" refitting '{session.profile.name}': scoring the new pair, {100 * refit.done // refit.total}% "
    return f" refitting '{session.profile.name}' "


def _refit_news(session: ChatSession) -> None:
    """Say that a background refit finished, and what the chat steers by from now on."""
    refit = session.finished_refit()
    if refit is None:
        return
    if refit.error is not None:
        error_line(f"the refit failed ({refit.error}); the chat keeps its weights, and the profile is refitted when next used")
        return
    weights = refit.steering.describe() if refit.steering else "none"
    console.print(f"[dim]refit ready; from the next answer the chat is steered by: {escape(weights)}[/]", highlight=False)
    if refit.notice:
        note(refit.notice)


def _save(session: ChatSession, arg: str) -> None:
    if not arg:
        raise DriftError("/save needs a file name", "e.g. /save chat.md")
    path = Path(arg).expanduser()
    messages = [{"role": m.role, "content": m.content} for m in session.state.history]
    if path.suffix == ".json":
        text = json.dumps(messages, indent=2, ensure_ascii=False)
    else:
        text = "\n\n".join(f"**{m['role']}**: {m['content']}" for m in messages) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        hint = "create the folder first" if not path.parent.is_dir() else None
        raise DriftError(f"cannot write {path}: {exc.strerror or exc}", hint) from None
    console.print(f"saved {len(messages)} messages to {escape(str(path))}", highlight=False)
