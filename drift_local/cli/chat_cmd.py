"""`drift-local chat`: a streaming multi-turn chat steered by a profile, with slash commands."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Iterator

import typer
from rich.panel import Panel
from rich.table import Table

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import console, err_console
from drift_local.cli.settings_flags import decoding_of, sampler_settings, settings_with

HELP = """[bold]/help[/]            this list
[bold]/beta X[/]          personalization strength (smaller steers harder; inf = off)
[bold]/attrs[/]           the active attributes and their weights
[bold]/plain[/]           toggle Drift off and on, to compare by feel
[bold]/compare[/]         plain and Drift answers to your last message, side by side
[bold]/prefer 1|2[/]      after /compare: store your choice as a preference pair (teaches the profile)
[bold]/save FILE[/]       write this conversation (Markdown, or JSON for .json)
[bold]/clear[/]           start over
[bold]/bye[/]             quit (Ctrl-D too); Ctrl-C stops the current answer"""


@app.command()
def chat(
    profile: options.Profile = None,
    llm: options.Llm = None,
    slm: options.Slm = None,
    beta: options.Beta = None,
    attributes: options.Attributes = None,
    seed: options.Seed = None,
    greedy: options.Greedy = False,
    temperature: options.Temperature = None,
    top_p: options.TopP = None,
    top_k: options.TopK = 0,
    min_p: options.MinP = 0.0,
    repeat_penalty: options.RepeatPenalty = 1.0,
    max_tokens: options.MaxTokens = None,
    n_ctx: options.NCtx = None,
    threads: options.Threads = None,
    n_gpu_layers: options.NGpuLayers = None,
    resume: Annotated[bool, typer.Option("--continue", "-c", help="Resume this profile's last conversation.")] = False,
) -> None:
    """Chat with the LLM, steered by a profile's preferences. Type /help inside for commands."""
    from drift_local.cli.steering import load_steering
    from drift_local.drift.sampling import Sampler
    from drift_local.engine.chat import Message
    from drift_local.profiles.store import Store
    from drift_local.sessions.chat import ChatSession, history_from_log
    from drift_local.sessions.decoder import DriftDecoder
    from drift_local.sessions.runtime import context_settings, open_models

    settings = settings_with(
        beta=beta, temperature=temperature, attributes=attributes, top_p=top_p, max_tokens=max_tokens, n_ctx=n_ctx, threads=threads, n_gpu_layers=n_gpu_layers
    )
    sampler = Sampler(sampler_settings(settings, seed=seed, greedy=greedy, top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty))
    models = open_models(settings, llm, slm)
    store = Store.open()
    target = store.get_profile(profile) if profile else None
    steering = load_steering(profile, models.slm, settings) if profile else None
    decoder = DriftDecoder(models, settings.attributes, context_settings(settings))
    history: list[Message] = []
    conversation_id = None
    if resume:
        last = store.last_conversation(target)
        if last is None:
            err_console.print("[yellow]note:[/] no earlier conversation to continue; starting a new one")
        else:
            conversation_id, logged = last
            history = history_from_log(logged)
    if conversation_id is None:
        conversation_id = store.start_conversation(target, {"llm": str(models.llm.path), "slm": str(models.slm.path)})
    session = ChatSession(
        store, decoder, sampler, profile=target, steering=steering, decoding=decoding_of(settings),
        max_tokens=settings.max_tokens, conversation_id=conversation_id, history=history,
    )
    _banner(session, models, decoder)
    try:
        _loop(session, settings)
    finally:
        store.close()


def _banner(session, models, decoder) -> None:
    who = f"profile [bold]{session.profile.name}[/]" if session.profile else "no profile (plain LLM)"
    console.print(f"[dim]{models.llm.path.name}[/] steered by [dim]{models.slm.path.name}[/] · {who} · β {session.state.decoding.beta}")
    if decoder.llm_chat.uses_fallback:
        err_console.print("[yellow]note:[/] the model has no chat template; using a plain 'User:/Assistant:' format")
    if session.steering is not None:
        console.print("[dim]attributes: " + ", ".join(f"{n} {w:+.2f}" for n, w in zip(session.steering.names, session.steering.weights)) + "[/]")
    if session.state.history:
        console.print(f"[dim]continuing: {len(session.state.history)} earlier messages[/]")
    console.print("[dim]/help for commands, /bye to quit[/]")


def _loop(session, settings) -> None:
    while True:
        try:
            line = console.input("[bold green]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        line = line.strip()
        if not line:
            continue
        if line.startswith("/"):
            if _command(session, settings, line) == "bye":
                return
            continue
        dropped = _fit(session, settings)
        if dropped is None:
            continue
        from drift_local.sessions.decoder import Answer

        answer = Answer()
        _stream("[bold cyan]ai>[/] ", session.ask(line, answer), answer)


def _fit(session, settings) -> int | None:
    from drift_local.errors import DriftError

    try:
        dropped = session.fit_history(reserve=min(settings.max_tokens, session.decoder.n_ctx // 4))
    except DriftError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        return None
    if dropped:
        err_console.print(f"[yellow]note:[/] the conversation neared the context size; dropped the {dropped} oldest exchange(s)")
    return dropped


def _stream(label: str, steps: Iterator, answer) -> None:
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
    if answer.stop == "context":
        err_console.print("[yellow]note:[/] the answer reached the context size")


def _command(session, settings, line: str) -> str | None:
    from drift_local.errors import DriftError

    name, _, arg = line.partition(" ")
    arg = arg.strip()
    try:
        if name in ("/bye", "/quit", "/exit"):
            return "bye"
        if name == "/help":
            console.print(HELP)
        elif name == "/beta":
            if arg:
                session.state.decoding = replace(session.state.decoding, beta=float(arg))
            console.print(f"β = {session.state.decoding.beta}")
        elif name == "/attrs":
            _show_attributes(session)
        elif name == "/plain":
            session.state.drift_on = not session.state.drift_on
            console.print("Drift on" if session.state.drift_on else "plain LLM (Drift off)")
        elif name == "/compare":
            _compare(session)
        elif name == "/prefer":
            _prefer(session, settings, arg)
        elif name == "/save":
            _save(session, arg)
        elif name == "/clear":
            session.clear()
            console.print("cleared")
        else:
            raise DriftError(f"unknown command {name}", "/help lists them")
    except ValueError:
        err_console.print(f"[red]error:[/] {name} needs a number")
    except DriftError as exc:
        err_console.print(f"[red]error:[/] {exc}")
    return None


def _show_attributes(session) -> None:
    if session.steering is None:
        console.print("no profile weights: plain decoding")
        return
    table = Table("attribute", "weight", "system prompt", title=f"active attributes (β {session.state.decoding.beta})")
    for name, weight, prompt in zip(session.steering.names, session.steering.weights, session.steering.prompts):
        table.add_row(name, f"{weight:+.3f}", prompt)
    console.print(table)


def _compare(session) -> None:
    from drift_local.sessions.decoder import Answer

    plain, drift = Answer(), Answer()
    plain_steps, drift_steps = session.compare(plain, drift)
    _stream("[bold]1 plain>[/] ", plain_steps, plain)
    _stream("[bold]2 drift>[/] ", drift_steps, drift)
    session.remember_comparison(plain, drift)
    side_by_side = Table.grid(expand=True, padding=(0, 1))
    side_by_side.add_column(ratio=1)
    side_by_side.add_column(ratio=1)
    side_by_side.add_row(Panel(plain.text, title="1 plain"), Panel(drift.text, title="2 drift"))
    console.print(side_by_side)
    console.print("[dim]/prefer 1 or /prefer 2 stores your choice in the profile[/]")


def _prefer(session, settings, arg: str) -> None:
    from drift_local.cli.progress import token_progress
    from drift_local.sessions.fit import profile_steering
    from drift_local.sessions.runtime import context_settings

    session.prefer(int(arg))
    console.print("stored; refitting the profile")
    with token_progress("scoring the new pair") as progress:
        steering, _ = profile_steering(
            session.store, session.profile, session.decoder.models.slm, context_settings(settings), settings.attributes,
            method=settings.method, reward=settings.reward, max_response_tokens=settings.max_response_tokens, progress=progress,
        )
    session.set_steering(steering)
    _show_attributes(session)


def _save(session, arg: str) -> None:
    import json

    from drift_local.errors import DriftError

    if not arg:
        raise DriftError("/save needs a file name")
    path = Path(arg).expanduser()
    messages = [{"role": m.role, "content": m.content} for m in session.state.history]
    if path.suffix == ".json":
        text = json.dumps(messages, indent=2, ensure_ascii=False)
    else:
        text = "\n\n".join(f"**{m['role']}**: {m['content']}" for m in messages) + "\n"
    path.write_text(text, encoding="utf-8")
    console.print(f"saved {len(messages)} messages to {path}")
