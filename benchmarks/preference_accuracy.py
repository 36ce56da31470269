"""Held-out preference accuracy on new prompts, for every simulated user: `eval` over a folder.

For each user's pairs (from `benchmarks/simulated_users.py`), the same evaluation as
`drift-local eval --split prompt`: about half the prompts train (k pairs drawn from them),
the rest test. Prints one table: each method's mean ± std accuracy per k, how many splits
the default method beat the paper's closed form and length only, and the averages.

    python benchmarks/preference_accuracy.py --data DIR [--shots 10,20,40] [--seeds 20]

DRIFT_LOCAL_HOME should be the one the data builder scored the answers in (nothing then
needs scoring).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the data builder's folder (with users/NAME.jsonl)")
    parser.add_argument("--users", default="all")
    parser.add_argument("--shots", default="10,20,40")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--split", default="prompt", choices=("prompt", "random"))
    parser.add_argument("--json", dest="json_out", help="also write the figures here")
    args = parser.parse_args()

    from drift_local.attributes import paper_attributes
    from drift_local.config import Settings
    from drift_local.errors import DriftError
    from drift_local.store.importers import read_pairs
    from drift_local.store.store import Store
    from drift_local.sessions.evaluate import DEFAULT_METHOD, LENGTH_ONLY, METHODS, evaluate
    from drift_local.sessions.rewards import RewardCache
    from drift_local.sessions.runtime import open_slm
    from drift_local.sessions.simulated_users import DEV_USERS, SIMULATED_USERS

    settings = Settings()
    users = list(SIMULATED_USERS) if args.users == "all" else args.users.split(",")
    shots = [int(k) for k in args.shots.split(",")]
    model = open_slm(settings)
    results = {}
    with Store.open() as store:
        cache = RewardCache(store, model, settings.context())
        for user in users:
            try:
                pairs = read_pairs(Path(args.data) / "users" / f"{user}.jsonl").pairs
                cache.fill_missing(pairs, paper_attributes())
                rewards = {mode: cache.rewards(pairs, paper_attributes(), mode) for mode in ("sum", "mean")}
                results[user] = evaluate(rewards, shots, args.seeds, args.split)
            except DriftError as exc:  # no pairs, or too few prompts for any k
                print(f"{user}: not evaluated: {exc.message}")

    shown = [DEFAULT_METHOD, "paper", LENGTH_ONLY, *(m for m in METHODS if m not in (DEFAULT_METHOD, "paper", LENGTH_ONLY, "chance"))]
    print(f"held-out accuracy on {'new prompts' if args.split == 'prompt' else 'random splits'} ({args.data}); "
          f"mean ± std over {args.seeds} splits; 'vs' = splits where {DEFAULT_METHOD} beat paper / length only; "
          "† defaults were chosen on this user (on other prompts)")
    figures = {}
    for k in shots:
        print(f"\nk = {k}")
        print(f"{'user':16s} {'pairs':>5s} " + "".join(f"{m:>15s}" for m in shown) + f"{'vs paper':>10s}{'vs length':>10s}")
        means = {m: [] for m in shown}
        for user, result in results.items():
            if k not in result.shots:
                print(f"{user:16s} {result.n_pairs:5d}   (too few pairs for k={k})")
                continue
            row = f"{user + (' †' if user in DEV_USERS else ''):16s} {result.n_pairs:5d} "
            for m in shown:
                mean, std = result.mean_std(m, k)
                means[m].append(mean)
                row += f"{mean:9.3f}±{std:.2f}"
                figures.setdefault(user, {}).setdefault(str(k), {})[m] = {"mean": mean, "std": std}
            beats_paper = sum(a > b for a, b in zip(result.scores[DEFAULT_METHOD][k], result.scores["paper"][k]))
            row += f"{beats_paper:>6d}/{result.n_splits(k):<3d}{result.beats_length(DEFAULT_METHOD, k):>6d}/{result.n_splits(k):<3d}"
            print(row)
        print(f"{'mean':16s} {'':5s} " + "".join(f"{np.mean(means[m]):15.3f}" if means[m] else f"{'-':>15s}" for m in shown))
        wins = sum(
            1 for u, r in results.items() if k in r.shots
            and r.mean_std(DEFAULT_METHOD, k)[0] > max(r.mean_std("paper", k)[0], r.mean_std(LENGTH_ONLY, k)[0])
        )
        print(f"{DEFAULT_METHOD} beats both paper and length only on {wins} of {sum(k in r.shots for r in results.values())} users")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
