"""What one shared decode step costs as more answers join it, in both KV cache layouts.

A Drift answer decodes k + 2 sequences a step (the LLM, the base prompt, k attributes).
For 1, 2 and 4 answers, each sequence first holds `--history` tokens, then every step
decodes one new token on each and fetches its logits, as `serve` does. Prints the time a
step takes and the answers' tokens/s relative to one answer alone: the most that batching
can give `serve` before prompts, sampling and HTTP, in a unified cache (one pool of cells,
every token attends over all of them) and in per-sequence streams (what decoding uses).

    python benchmarks/decode_batch.py [--threads N] [--history 100] [--steps 6] [--llm PATH]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from drift_local.config import Settings
from drift_local.engine.context import Context, ContextSettings
from drift_local.sessions.runtime import open_models

PER_ANSWER = 9  # the LLM, base and 7 attributes, one model for both roles


def step_seconds(model, settings: ContextSettings, unified: bool, answers: int, history: int, steps: int) -> float:
    n_seq = answers * PER_ANSWER
    context = Context(model, n_seq, settings, unified=unified)
    rng = np.random.default_rng(0)
    targets = {seq: rng.integers(100, 5000, size=history).tolist() for seq in range(n_seq)}
    context.ingest(targets)
    started = time.perf_counter()
    for _ in range(steps):
        for tokens in targets.values():
            tokens.append(int(rng.integers(100, 5000)))
        context.last_logits(targets)
    context.close()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all CPUs)")
    parser.add_argument("--history", type=int, default=100, help="tokens each sequence holds before the timed steps")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--llm", default=None, help="the model (default: the embedded SmolLM2)")
    args = parser.parse_args()
    model = open_models(Settings(), args.llm).llm
    settings = ContextSettings(n_ctx=1024, threads=args.threads)
    print(f"{args.history} tokens held per sequence, {PER_ANSWER} sequences per answer, threads {args.threads or 'all'}; load average {os.getloadavg()[0]:.1f}")
    for unified in (True, False):
        one = None
        for answers in (1, 2, 4):
            seconds = step_seconds(model, settings, unified, answers, args.history, args.steps)
            one = one or seconds
            print(f"{'unified cache' if unified else 'streams      '}  {answers} answer{'s' if answers > 1 else ' '}: {seconds * 1000:6.0f} ms a step"
                  f"  {answers * one / seconds:.2f}× one answer's tokens/s  load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
