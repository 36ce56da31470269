"""`drift-local generate`: one answer, streamed to stdout."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import print_json
from drift_local.cli.settings_flags import DecodingFlags, decoding_flags


@app.command()
@decoding_flags
def generate(
    prompt: Annotated[str, typer.Argument(help="The user message to answer ('-' reads stdin).")],
    profile: options.Profile = None,
    system: Annotated[Optional[str], typer.Option("--system", "-s", help="Your own system prompt for the LLM.")] = None,
    json_out: options.Json = False,
    flags: DecodingFlags = None,
) -> None:
    """Answer one prompt with the LLM steered by a profile (plain LLM decoding without one).

    The prompt and answer are logged like a chat turn (see: drift-local logs). --json prints
    the answer with the active attributes, beta, decoding speed (tokens/s after the prompt is
    read; the prompt's time is prefill_seconds) and the per-step entropy of the LLM's and the
    Drift distributions.
    """
    from drift_local.cli.common import note
    from drift_local.cli.progress import token_progress
    from drift_local.sessions.generate import Generation

    text = sys.stdin.read() if prompt == "-" else prompt
    with token_progress("scoring the profile's pairs") as progress:
        run = Generation(flags.settings(), llm=flags.llm, slm=flags.slm, profile=profile, greedy=flags.greedy, system=system, progress=progress)
    if run.notice:
        note(run.notice)
    for step in run.stream(text, stats=json_out):
        if not json_out:
            sys.stdout.write(step.text)
            sys.stdout.flush()
    if not json_out:
        sys.stdout.write("\n")
        return
    answer, steering = run.answer, run.steering
    print_json({
        "text": answer.text,
        "stop": answer.stop,
        "tokens": len(answer.tokens),
        "tokens_per_second": run.tokens_per_second,
        "prefill_seconds": run.prefill_seconds,
        "beta": run.settings.beta,
        "profile": profile,
        "conversation": run.conversation_id,
        "attributes": [{"name": n, "weight": float(w)} for n, w in zip(steering.names, steering.weights)] if steering else [],
        "style": steering.style() if steering else {},
        "llm": str(run.models.llm.path),
        "slm": str(run.models.slm.path),
        "entropy_bits": {
            "llm": answer.entropy_llm,
            "drift": answer.entropy_drift,
            "llm_mean": _mean(answer.entropy_llm),
            "drift_mean": _mean(answer.entropy_drift),
        },
    })


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
