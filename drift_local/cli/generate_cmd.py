"""`drift-local generate`: one answer, streamed to stdout."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.common import print_json
from drift_local.cli.settings_flags import decoding_of, sampler_settings, settings_with


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The user message to answer ('-' reads stdin).")],
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
    json_out: options.Json = False,
) -> None:
    """Answer one prompt with the LLM steered by a profile (plain LLM decoding without one).

    --json prints the answer with the active attributes, beta, tokens/s and the per-step
    entropy of the LLM's and the Drift distributions.
    """
    from drift_local.drift.sampling import Sampler
    from drift_local.engine.chat import Message
    from drift_local.sessions.decoder import Answer, DriftDecoder
    from drift_local.sessions.runtime import context_settings, open_models
    from drift_local.cli.steering import load_steering

    settings = settings_with(
        beta=beta, temperature=temperature, attributes=attributes, top_p=top_p, max_tokens=max_tokens, n_ctx=n_ctx, threads=threads, n_gpu_layers=n_gpu_layers
    )
    text = sys.stdin.read() if prompt == "-" else prompt
    sampler = Sampler(sampler_settings(settings, seed=seed, greedy=greedy, top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty))
    models = open_models(settings, llm, slm)
    steering = load_steering(profile, models.slm, settings) if profile else None
    decoder = DriftDecoder(models, steering.k if steering else 0, context_settings(settings))
    answer = Answer()
    start = time.perf_counter()
    for step in decoder.stream(
        [Message("user", text)], steering, decoding=decoding_of(settings), sampler=sampler,
        max_tokens=settings.max_tokens, stats=json_out, answer=answer,
    ):
        if not json_out:
            sys.stdout.write(step.text)
            sys.stdout.flush()
    elapsed = time.perf_counter() - start
    if not json_out:
        sys.stdout.write("\n")
        return
    print_json({
        "text": answer.text,
        "stop": answer.stop,
        "tokens": len(answer.tokens),
        "tokens_per_second": len(answer.tokens) / elapsed if elapsed > 0 else None,
        "beta": settings.beta,
        "profile": profile,
        "attributes": [
            {"name": n, "weight": float(w)} for n, w in zip(steering.names, steering.weights)
        ] if steering else [],
        "llm": str(models.llm.path),
        "slm": str(models.slm.path),
        "entropy_bits": {
            "llm": answer.entropy_llm,
            "drift": answer.entropy_drift,
            "llm_mean": _mean(answer.entropy_llm),
            "drift_mean": _mean(answer.entropy_drift),
        },
    })


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
