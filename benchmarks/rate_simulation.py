"""Simulated users with a hidden preference, driven through `rate`'s rounds on the embedded model.

For each user (fewer words -> concise; no contractions -> formal; more exclamation marks ->
exclamatory), seed and question rule (active, random), after each checkpoint it reports the
rank of the matching attribute among the 41 (1 = most preferred) and the accuracy of p at
predicting that user's choices on held-out pairs (fresh prompts, random attributes). Scores
are cached in one store, so candidates shared between runs are scored once.

    python benchmarks/rate_simulation.py [--users all] [--seeds 5] [--choices 20] [--checkpoints 5,10,20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="all")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--choices", type=int, default=20)
    parser.add_argument("--checkpoints", default="5,10,20")
    parser.add_argument("--heldout", type=int, default=10, help="held-out pairs per seed")
    parser.add_argument("--max-tokens", type=int, default=40, help="candidate length")
    parser.add_argument("--cap", type=int, default=40, help="scored tokens per response")
    parser.add_argument("--strategies", default="active,random")
    parser.add_argument("--home", default="", help="keep the score cache here between runs")
    args = parser.parse_args()
    os.environ["DRIFT_LOCAL_HOME"] = args.home or tempfile.mkdtemp(prefix="drift-sim-")

    import numpy as np

    from drift_local.attributes import paper_attributes
    from drift_local.config import Settings
    from drift_local.drift.approx import accuracy
    from drift_local.profiles.store import Store
    from drift_local.sessions.decoder import DriftDecoder
    from drift_local.sessions.rate import SIMULATED_USERS, Rater, bundled_prompts, score_candidates, simulated_choice, write_candidates
    from drift_local.sessions.rewards import RewardCache
    from drift_local.sessions.runtime import context_settings, open_models

    users = list(SIMULATED_USERS) if args.users == "all" else args.users.split(",")
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    settings = Settings()
    models = open_models(settings)
    ctx = context_settings(settings)
    attributes = paper_attributes()
    decoder = DriftDecoder(models, 1, ctx)
    store = Store.open()
    cache = RewardCache(store, models.slm, ctx, args.cap)
    prompts = bundled_prompts()
    train_prompts, heldout_prompts = prompts[:-15], prompts[-15:]

    written = {}

    def write(prompt, attribute, seed):
        # Random questions depend only on the seed, and active ones do during the cold start,
        # so users often meet the same candidates: write and score each once.
        key = (prompt, attribute, seed)
        if key not in written:
            decoder.slm_ctx.clear()  # same starting state, same text, whatever came before
            candidates = write_candidates(decoder, attributes, prompt, attribute, beta=1.0, max_tokens=args.max_tokens, seed=seed)
            score_candidates(cache, attributes, candidates)
            written[key] = candidates
        return written[key]

    results = []
    started = time.perf_counter()
    for seed in range(args.seeds):
        rng = np.random.default_rng(1000 + seed)
        heldout = [write(heldout_prompts[i % 15], attributes.names[int(rng.integers(41))], int(rng.integers(2**31))) for i in range(args.heldout)]
        heldout_rewards = cache.rewards([c.as_pair_text() for c in heldout], attributes, "sum")
        for user in users:
            labels = [simulated_choice(user, c) for c in heldout]
            decided = [i for i, label in enumerate(labels) if label != "tie"]
            win = np.array([heldout_rewards.win[i] if labels[i] == "first" else heldout_rewards.lose[i] for i in decided])
            lose = np.array([heldout_rewards.lose[i] if labels[i] == "first" else heldout_rewards.win[i] for i in decided])
            target = SIMULATED_USERS[user][1]
            for strategy in args.strategies.split(","):
                profile = store.create_profile(f"{user}-{strategy}-{seed}")
                rater = Rater(store, profile, attributes, cache, strategy=strategy, seed=seed)
                order = np.random.default_rng(seed).permutation(len(train_prompts))
                for round_ in range(1, max(checkpoints) + 1):
                    attribute, write_seed = rater.ask_about()
                    candidates = write(train_prompts[order[(round_ - 1) % len(order)]], attribute, write_seed)
                    rater.choose(candidates, simulated_choice(user, candidates))
                    if round_ in checkpoints:
                        weights = rater.fit.weights if rater.fit is not None else np.zeros(41)
                        rank = 1 + int(np.sum(weights > weights[attributes.names.index(target)]))
                        acc = accuracy(weights, win, lose) if len(decided) else float("nan")
                        row = {"user": user, "strategy": strategy, "seed": seed, "choices": round_, "rank": rank, "heldout_accuracy": acc, "heldout_pairs": len(decided)}
                        results.append(row)
                        print(json.dumps(row), flush=True)
    print(f"\n{len(results)} checkpoints in {time.perf_counter() - started:.0f} s; matching attribute rank (1 = top of 41) and held-out accuracy:")
    print(f"{'user':18s} {'rule':7s} {'choices':>7s} {'mean rank':>9s} {'top-5 share':>11s} {'accuracy':>9s}")
    for user in users:
        for strategy in args.strategies.split(","):
            for k in checkpoints:
                rows = [r for r in results if r["user"] == user and r["strategy"] == strategy and r["choices"] == k]
                if rows:
                    ranks = [r["rank"] for r in rows]
                    accs = [r["heldout_accuracy"] for r in rows if r["heldout_accuracy"] == r["heldout_accuracy"]]
                    print(f"{user:18s} {strategy:7s} {k:7d} {statistics.mean(ranks):9.1f} {sum(r <= 5 for r in ranks) / len(ranks):11.0%} "
                          f"{statistics.mean(accs) if accs else float('nan'):9.2f}")


if __name__ == "__main__":
    main()
