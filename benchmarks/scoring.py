"""Scoring throughput of Drift Approximation next to llama.cpp's raw prompt-processing rate.

A realistic job: N preference pairs (default 50, built from the PRISM examples the paper
quotes) x 42 prompts (base + 41 attributes) on the embedded model, through the same
batched, prefix-sharing path `fit` uses. The raw rate is llama_decode on one sequence of 512
tokens at a time (as llama-bench's pp512), called directly. Both in one run, one machine.

    python benchmarks/scoring.py [--pairs 50] [--model PATH] [--max-response-tokens 0]
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources

import llama_cpp

from drift_local.attributes import paper_attributes
from drift_local.sessions.runtime import model_file
from drift_local.engine.template import ChatFormat
from drift_local.engine.context import Context, ContextSettings
from drift_local.engine.model import load_model
from drift_local.engine.scoring import ScoreRequest, Scorer
from drift_local.sessions.rewards import SCORING_CELLS, SCORING_SEQUENCES


def raw_prompt_rate(model, tokens: list[int], reps: int = 3) -> float:
    """Tokens/s of plain llama_decode over one 512-token sequence, no drift-local code involved."""
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = params.n_batch = params.n_ubatch = 512
    from drift_local.engine.context import default_threads

    params.n_threads = params.n_threads_batch = default_threads()
    ctx = llama_cpp.llama_init_from_model(model.ptr, params)
    batch_tokens = (llama_cpp.llama_token * 512)(*tokens[:512])
    best = 0.0
    for _ in range(reps + 1):  # the first run warms up
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        started = time.perf_counter()
        assert llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(batch_tokens, 512)) == 0
        best = max(best, 512 / (time.perf_counter() - started))
    llama_cpp.llama_free(ctx)
    return best


def job(n_pairs: int) -> list[ScoreRequest]:
    text = resources.files("drift_local.data").joinpath("example_pairs.jsonl").read_text(encoding="utf-8")
    examples = [json.loads(line) for line in text.splitlines() if line.strip()]
    attributes = paper_attributes()
    requests = []
    for i in range(n_pairs):
        pair = examples[i % len(examples)]
        prompt = f"({i}) {pair['prompt']}"  # distinct prompts: no sharing across pairs beyond the template
        for system in (attributes.base, *attributes.prompts):
            requests.append(ScoreRequest(system, prompt, (pair["chosen"], pair["rejected"])))
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--model", default="")
    parser.add_argument("--max-response-tokens", type=int, default=0)
    args = parser.parse_args()
    model = load_model(model_file(args.model))
    chat = ChatFormat(model)
    requests = job(args.pairs)
    context = Context(model, SCORING_SEQUENCES, ContextSettings(n_ctx=2048), n_cells=SCORING_CELLS)
    scorer = Scorer(context, chat, args.max_response_tokens)
    raw = raw_prompt_rate(model, sum((chat.prompt_tokens(r.system, r.responses[0]) for r in requests[:10]), []))
    logical = scorer.tokens_needed(requests)
    scorer.score(requests[:2])  # warm-up
    context.decoded_tokens, context.decode_seconds = 0, 0.0
    started = time.perf_counter()
    scorer.score(requests)
    elapsed = time.perf_counter() - started
    print(f"model {model.path.name}; job: {args.pairs} pairs x 42 prompts = {len(requests)} requests, {logical} tokens")
    print(f"llama.cpp raw prompt processing (pp512):   {raw:8.1f} tok/s")
    print(f"scoring, tokens covered / wall time:       {logical / elapsed:8.1f} tok/s  ({logical / elapsed / raw:.2f}x raw)")
    print(f"scoring, tokens computed / wall time:      {context.decoded_tokens / elapsed:8.1f} tok/s  "
          f"({context.decoded_tokens / elapsed / raw:.2f}x raw; prefix sharing skipped {1 - context.decoded_tokens / logical:.0%})")
    print(f"time inside llama_decode: {context.decode_seconds / elapsed:.0%} of {elapsed:.1f} s")


if __name__ == "__main__":
    main()
