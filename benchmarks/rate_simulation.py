"""Simulated users with a hidden preference, driven through `rate`'s rules on the embedded model.

For each user (fewer words -> concise; no contractions -> formal; exclamation marks ->
exclamatory; first-person anecdotes -> storyteller), seed and question rule (active,
random), after each checkpoint it reports the rank of the matching attribute among the 41
(1 = most preferred) and the accuracy of the fit at predicting that user's choices on
held-out pairs (held-out prompts, random attributes). Fits use `--method` (fit's default).

Writing full-length candidates and scoring them under 42 system prompts costs about 30 s a
pair here, and 5 seeds x 3 users x 2 rules x 20 choices would ask for ~300 distinct pairs
(hours on 2 cores). So the candidates come from a pool written once, in advance, exactly as
`rate` writes them: `--per-attribute` pairs for each attribute (toward it, away from it, on a
random training prompt) and `--heldout` pairs on held-out prompts. When a rule asks about an
attribute, the session gets that attribute's least-used pool pair. Everything else is the real
session: the Rater's rules, the store, the reward cache and the refit after each choice.

    python benchmarks/rate_simulation.py --home DIR [--seeds 5] [--choices 20] [--checkpoints 5,10,20]

Keep `--home` between runs: the pool (pool.json) and its scores are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True, help="store, score cache and pool live here between runs")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--choices", type=int, default=20)
    parser.add_argument("--checkpoints", default="5,10,20")
    parser.add_argument("--per-attribute", type=int, default=2, help="pool pairs written per attribute")
    parser.add_argument("--heldout", type=int, default=20, help="held-out pool pairs")
    parser.add_argument("--max-tokens", type=int, default=160, help="candidate length")
    parser.add_argument("--beta", type=float, default=1.0, help="steering strength of the candidates (rate's default)")
    parser.add_argument("--cap", type=int, default=64, help="scored tokens per response")
    parser.add_argument("--reward", default="sum", choices=("sum", "mean"))
    parser.add_argument("--method", default=None, help="fit method (default: fit's default)")
    parser.add_argument("--users", default="fewer-words,no-contractions,exclamations,anecdotes")
    parser.add_argument("--strategies", default="active,random")
    parser.add_argument("--write-only", action="store_true", help="write the pool and stop")
    args = parser.parse_args()
    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DRIFT_LOCAL_HOME"] = str(home)

    import numpy as np

    from drift_local.attributes import paper_attributes
    from drift_local.config import Settings
    from drift_local.drift.steering import Decoding
    from drift_local.drift.approx import DEFAULT_METHOD, FIT_METHODS, Pairs, accuracy
    from drift_local.store.store import Store
    from drift_local.sessions.decoder import DriftDecoder
    from drift_local.sessions.rate import Candidates, Rater, bundled_prompts, write_candidates
    from drift_local.sessions.simulated_users import SIMULATED_USERS
    from drift_local.sessions.rewards import RewardCache
    from drift_local.sessions.runtime import open_models

    settings = Settings()
    models = open_models(settings)
    ctx = settings.context()
    attributes = paper_attributes()
    started = time.perf_counter()

    pool_path = home / "pool.json"
    if not pool_path.exists():
        decoder = DriftDecoder(models, 1, ctx)
        prompts = bundled_prompts()
        train_prompts, heldout_prompts = prompts[:-15], prompts[-15:]
        rng = np.random.default_rng(7)
        plan = [("train", train_prompts[int(rng.integers(len(train_prompts)))], name) for name in attributes.names for _ in range(args.per_attribute)]
        plan += [("heldout", heldout_prompts[i % 15], attributes.names[int(rng.integers(len(attributes.names)))]) for i in range(args.heldout)]
        pool = []
        for i, (role, prompt, attribute) in enumerate(plan):
            decoder.slm_ctx.clear()
            c = write_candidates(decoder, attributes, prompt, attribute, decoding=Decoding(args.beta), max_tokens=args.max_tokens, seed=int(rng.integers(2**31)))
            pool.append({"role": role, "prompt": c.prompt, "attribute": c.attribute, "texts": list(c.texts)})
            print(f"wrote {i + 1}/{len(plan)} ({time.perf_counter() - started:.0f} s)", flush=True)
        pool_path.write_text(json.dumps(pool, indent=1))
    pool = [(p["role"], Candidates(p["prompt"], p["attribute"], tuple(p["texts"]))) for p in json.loads(pool_path.read_text())]
    if args.write_only:
        return

    store = Store.open()
    cache = RewardCache(store, models.slm, ctx, args.cap)
    scored_tokens = cache.fill_missing([c.pair("first") for _, c in pool], attributes)
    print(f"pool of {len(pool)} pairs scored ({scored_tokens} new tokens, {time.perf_counter() - started:.0f} s)", flush=True)

    by_attribute: dict[str, list[Candidates]] = {}
    for role, c in pool:
        if role == "train":
            by_attribute.setdefault(c.attribute, []).append(c)
    heldout = [c for role, c in pool if role == "heldout"]
    heldout_rewards = cache.rewards([c.pair("first") for c in heldout], attributes, args.reward)

    users = args.users.split(",")
    method = args.method or DEFAULT_METHOD
    checkpoints = [int(c) for c in args.checkpoints.split(",")]
    results = []
    train = [c for role, c in pool if role == "train"]
    train_rewards = cache.rewards([c.pair("first") for c in train], attributes, args.reward)

    def as_chosen(rewards, candidates, user) -> Pairs:
        """The pairs this user decides, chosen side first."""
        labels = [SIMULATED_USERS[user].choose(*c.texts) for c in candidates]
        decided = [i for i, label in enumerate(labels) if label != "tie"]
        first = np.array([labels[i] == "first" for i in decided], dtype=bool)
        return rewards.subset(np.array(decided, dtype=int)).swapped(~first)

    def rank_of(weights, target):
        return 1 + int(np.sum(weights > weights[target]))

    ceiling = {}
    for user in users:
        # The ceiling: p fitted on every training pair of the pool, whatever a rule would ask.
        decided = as_chosen(train_rewards, train, user)
        ceiling[user] = (rank_of(FIT_METHODS[method](decided).weights, attributes.names.index(SIMULATED_USERS[user].attribute)), len(decided))
    for user in users:
        heldout_pairs = as_chosen(heldout_rewards, heldout, user)
        target = attributes.names.index(SIMULATED_USERS[user].attribute)
        for strategy in args.strategies.split(","):
            for seed in range(args.seeds):
                profile = store.create_profile(f"{user}-{strategy}-{args.reward}-{seed}-{time.time_ns()}")
                rater = Rater(store, profile, attributes, cache, strategy=strategy, method=method, reward=args.reward, seed=seed)
                used: dict[int, int] = {}
                for round_ in range(1, max(checkpoints) + 1):
                    attribute, _ = rater.ask_about()
                    candidates = min(by_attribute[attribute], key=lambda c: used.get(id(c), 0))
                    used[id(candidates)] = used.get(id(candidates), 0) + 1
                    rater.choose(candidates, SIMULATED_USERS[user].choose(*candidates.texts))
                    if round_ in checkpoints:
                        weights = rater.fit.weights if rater.fit is not None else np.zeros(len(attributes.names))
                        acc = accuracy(rater.fit, heldout_pairs) if len(heldout_pairs) and rater.fit is not None else float("nan")
                        row = {"user": user, "strategy": strategy, "seed": seed, "choices": round_, "rank": rank_of(weights, target),
                               "heldout_accuracy": round(acc, 3), "heldout_pairs": len(heldout_pairs)}
                        results.append(row)
                        print(json.dumps(row), flush=True)

    print(f"\n{len(results)} checkpoints, {method} fit, {args.reward} rewards, {time.perf_counter() - started:.0f} s in all; "
          "matching attribute rank (1 = top of 41) and held-out accuracy:")
    print(f"{'user':18s} {'rule':7s} {'choices':>7s} {'mean rank':>9s} {'top-5 share':>11s} {'accuracy':>9s}")
    for user in users:
        for strategy in args.strategies.split(","):
            for k in checkpoints:
                rows = [r for r in results if r["user"] == user and r["strategy"] == strategy and r["choices"] == k]
                ranks = [r["rank"] for r in rows]
                if not ranks:  # --seeds 0: only write and score the pool
                    continue
                accs = [r["heldout_accuracy"] for r in rows if r["heldout_accuracy"] == r["heldout_accuracy"]]
                print(f"{user:18s} {strategy:7s} {k:7d} {statistics.mean(ranks):9.1f} {sum(r <= 5 for r in ranks) / len(ranks):11.0%} "
                      f"{statistics.mean(accs) if accs else float('nan'):9.2f}")
        rank, n = ceiling[user]
        print(f"{user:18s} {'all':7s} {n:7d} {rank:9d}   (every decided training pair in the pool)")


if __name__ == "__main__":
    main()
