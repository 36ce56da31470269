"""Drift Decoding speed next to plain decoding, on one model serving as LLM and sLM.

Prints, in one run: plain LLM tokens/s; Drift tokens/s with k attributes; the time inside
llama_decode in the Drift loop, so the cost of everything else (batch set-up, numpy
combination, sampling, streaming) shows as a share of the step; and the time to first token
of a new chat turn with and without reuse of every sequence's KV state.

    python benchmarks/decoding.py [--model PATH] [--k 7] [--tokens 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from drift_local.attributes import paper_attributes
from drift_local.config import Settings
from drift_local.drift.sampling import Sampler, SamplerSettings
from drift_local.drift.steering import Decoding
from drift_local.engine.template import Message
from drift_local.engine.context import ContextSettings
from drift_local.sessions.decoder import Answer, DriftDecoder, Steering
from drift_local.sessions.runtime import open_models

FIRST = [Message("user", "Write a long story about a lighthouse keeper and a storm.")]


def steering(k: int) -> Steering:
    attributes = paper_attributes()
    picked = list(range(0, 41, max(1, 41 // k)))[:k]
    weights = np.linspace(0.6, -0.4, k)
    return Steering(attributes.base, tuple(attributes.names[i] for i in picked), tuple(attributes.prompts[i] for i in picked), weights)


def run(decoder: DriftDecoder, conversation, steer, tokens: int) -> tuple[Answer, float, float]:
    """(answer, seconds, seconds to first token)."""
    answer = Answer()
    sampler = Sampler(SamplerSettings(seed=0))
    started = time.perf_counter()
    first = None
    for _ in decoder.stream(conversation, steer, decoding=Decoding(0.5), sampler=sampler, max_tokens=tokens, answer=answer):
        first = first or time.perf_counter() - started
    return answer, time.perf_counter() - started, first or 0.0


def decode_seconds(decoder: DriftDecoder) -> float:
    contexts = {id(decoder.slm_ctx): decoder.slm_ctx, id(decoder.llm_ctx): decoder.llm_ctx}
    return sum(c.decode_seconds for c in contexts.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="LLM and sLM (default: embedded SmolLM2)")
    parser.add_argument("--k", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    models = open_models(Settings(), args.model or None, args.model or None)
    decoder = DriftDecoder(models, args.k, ContextSettings(n_ctx=2048))
    steer = steering(args.k)
    run(decoder, FIRST, steer, 4)  # warm-up

    decoder.llm_ctx.clear()
    plain, plain_s, plain_first = run(decoder, FIRST, None, args.tokens)
    decoder.slm_ctx.clear()
    before = decode_seconds(decoder)
    drift, drift_s, drift_first = run(decoder, FIRST, steer, args.tokens)
    in_decode = decode_seconds(decoder) - before
    # A time-to-first-token run includes the prompt's prefill; the per-token rates use the rest.
    print(f"model {models.llm.path.name} as LLM and sLM, k={args.k}, beta 0.5, top-p 0.9")
    for name, answer, seconds, first in (("plain LLM", plain, plain_s, plain_first), (f"Drift k={args.k}", drift, drift_s, drift_first)):
        steady = (seconds - first) / max(1, len(answer.tokens) - 1)
        print(f"{name:10s} {len(answer.tokens):4d} tokens in {seconds:6.2f} s = {len(answer.tokens) / seconds:6.1f} tok/s; "
              f"after the first token {1 / steady:6.1f} tok/s ({steady * 1000:.1f} ms a step)")
    print(f"  inside llama_decode: {in_decode:6.2f} s ({in_decode / drift_s:.1%}); everything else: "
          f"{drift_s - in_decode:5.2f} s ({1 - in_decode / drift_s:.1%} of the step; bar: at most 10%)")

    turn = FIRST + [Message("assistant", drift.text), Message("user", "Now make it shorter, in three sentences.")]
    _, _, reused = run(decoder, turn, steer, 1)
    decoder.slm_ctx.clear()
    decoder.llm_ctx.clear()
    _, _, fresh = run(decoder, turn, steer, 1)
    print(f"time to first token of a new turn, k={args.k}: {reused * 1000:7.0f} ms reusing KV states, "
          f"{fresh * 1000:7.0f} ms re-prefilling ({fresh / reused:.1f}x)")


if __name__ == "__main__":
    main()
