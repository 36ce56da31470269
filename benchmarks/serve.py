"""`drift-local serve` throughput: aggregate tokens/s for 1, 2 and 4 concurrent clients.

Starts the real command (a subprocess, embedded model by default) on a free loopback port
with four Drift profiles, then sends chat completions over HTTP: each client asks its own
profile `--requests` questions in a row. Prints completion tokens per second of wall time,
summed over the clients, next to one client alone. Concurrent answers share every
llama_decode, so together they should beat one client (the bar: 4 clients ≥ 1.3×).

    python benchmarks/serve.py [--tokens 64] [--requests 2] [--threads N] [--llm PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from drift_local.attributes import paper_attributes
from drift_local.store.store import Pair, Store

ATTRIBUTES = 10  # enabled per profile; the top 7 steer
# A question is asked once in a run (up to --requests 2): the server keeps finished answers' tokens, and a repeat
# would find its whole prompt decoded. (Each profile's system prompts do stay cached, as in use.)
QUESTIONS = [
    "Tell me about the sea.", "How should I plan a weekend trip?", "Explain how a bicycle works.",
    "What makes a good breakfast?", "How do I start running?", "Why is the sky blue?",
    "What should I read next?", "How do plants grow?", "Explain how a fridge keeps food cold.",
    "What is a good way to learn a language?", "How do I keep a small garden?", "What makes a story exciting?",
    "How do trains stay on the rails?", "What should I cook tonight?", "How does a camera work?",
    "How can I sleep better?", "What is the moon made of?", "How do I write a thank-you note?",
]
WARM_UP = "Say hello."


def make_profiles(path: Path) -> list[str]:
    """Four profiles on the demo's first two pairs, each pair kept or flipped: four tastes, one score cache."""
    with (Path(__file__).parents[1] / "drift_local/data/demo_pairs.jsonl").open() as f:
        pairs = [Pair(d["prompt"], d["chosen"], d["rejected"]) for d in map(json.loads, f)][:2]
    names = []
    with Store.open(path) as store:
        for index, flips in enumerate([(False, False), (False, True), (True, False), (True, True)]):
            profile = store.create_profile(f"user{index}")
            for attribute in paper_attributes().names[ATTRIBUTES:]:
                store.set_attribute_enabled(profile, attribute, False)
            store.add_pairs(profile, [Pair(p.prompt, p.rejected, p.chosen) if flip else p for p, flip in zip(pairs, flips)])
            names.append(profile.name)
    return names


def start_server(home: Path, llm: str | None, threads: int, parallel: int | None) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "DRIFT_LOCAL_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    (home / "config.toml").write_text('method = "paper"\nmax_response_tokens = 16\n')
    command = [sys.executable, "-m", "drift_local", "serve", "--port", "0", "--n-ctx", "1024", "--threads", str(threads), *(["--llm", llm] if llm else []),
               *(["--parallel", str(parallel)] if parallel else [])]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in server.stdout:
        if match := re.search(r"(http://127\.0\.0\.1:\d+/v1)", line):
            return server, match.group(1)
    raise SystemExit("the server did not start")


def client(url: str, profile: str, questions: list[str], tokens: int, seed: int) -> int:
    """One client: its questions in a row; returns the completion tokens it got."""
    total = 0
    with httpx.Client(timeout=600) as http:
        for i, question in enumerate(questions):
            body = {
                "model": f"drift:{profile}",
                "messages": [{"role": "user", "content": question}],
                "max_tokens": tokens,
                "seed": seed * 100 + i,
            }
            reply = http.post(url + "/chat/completions", json=body)
            reply.raise_for_status()
            total += reply.json()["usage"]["completion_tokens"]
    return total


def measure(url: str, profiles: list[str], questions: list[str], clients: int, tokens: int) -> tuple[float, int, float]:
    """Each client asks its share of `questions` (as many each), all clients at once."""
    share = len(questions) // clients
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        counts = list(pool.map(lambda i: client(url, profiles[i], questions[i * share : (i + 1) * share], tokens, i), range(clients)))
    elapsed = time.perf_counter() - started
    return sum(counts) / elapsed, sum(counts), elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens per answer")
    parser.add_argument("--requests", type=int, default=2, help="questions each client asks in a row")
    parser.add_argument("--llm", default=None, help="LLM and sLM (default: the embedded SmolLM2)")
    parser.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: all CPUs)")
    parser.add_argument("--parallel", type=int, default=None, help="the server's --parallel (default: its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        profiles = make_profiles(home / "drift.db")
        started = time.perf_counter()
        server, url = start_server(home, args.llm, args.threads, args.parallel)
        print(f"server up in {time.perf_counter() - started:.1f} s (model load and fitting 4 profiles); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        try:
            measure(url, profiles, [WARM_UP] * len(profiles), len(profiles), 8)  # every profile's system prompts decoded once
            rows = []
            unasked = iter(QUESTIONS * (1 + 7 * args.requests // len(QUESTIONS)))  # 1 + 2 + 4 clients
            for clients in (1, 2, 4):
                questions = [next(unasked) for _ in range(clients * args.requests)]
                rate, count, elapsed = measure(url, profiles, questions, clients, args.tokens)
                rows.append(rate)
                print(f"{clients} client{'s' if clients > 1 else ' '}: {rate:6.1f} tokens/s  ({count} tokens in {elapsed:.1f} s)  {rate / rows[0]:.2f}× one client  load {os.getloadavg()[0]:.1f}")
        finally:
            server.terminate()
            server.wait(30)
        verdict = "meets" if rows[2] >= 1.3 * rows[0] else "misses"
        print(f"4 concurrent clients: {rows[2] / rows[0]:.2f}× one client ({verdict} the 1.3× bar)")


if __name__ == "__main__":
    main()
