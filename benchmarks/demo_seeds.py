"""Does the demo's steered answer follow its example user, seed after seed?

The example user chose short, calm answers over long, exclamatory ones. For each seed this
writes the demo's two answers exactly as `drift-local demo --seed N` does (same profile, fit,
prompt and settings) and compares their words and exclamation marks.

    python benchmarks/demo_seeds.py [--seeds 1,2,3,4,5]
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--max-tokens", type=int, default=120, help="as the demo's default")
    args = parser.parse_args()

    from drift_local.cli.demo_cmd import DEMO_PROMPT
    from drift_local.cli.settings_flags import settings_with
    from drift_local.sessions.demo import fit_demo, plain_and_steered
    from drift_local.sessions.runtime import open_models

    settings = settings_with()
    models = open_models(settings)
    steering = fit_demo(models, settings).steering
    seeds = [int(s) for s in args.seeds.split(",")]
    followed = 0
    print(f"{'seed':>4s}  {'plain words':>11s} {'!':>3s}  {'drift words':>11s} {'!':>3s}  follows the user")
    for seed in seeds:
        texts = {"plain": "", "drift": ""}
        for key, text in plain_and_steered(models, steering, settings_with(seed=seed), DEMO_PROMPT, args.max_tokens):
            texts[key] += text
        plain, drift = texts["plain"], texts["drift"]
        ok = len(drift.split()) < len(plain.split()) and drift.count("!") <= plain.count("!")
        followed += ok
        print(f"{seed:4d}  {len(plain.split()):11d} {plain.count('!'):3d}  {len(drift.split()):11d} {drift.count('!'):3d}  {'yes' if ok else 'no'}")
    print(f"the steered answer is shorter with no more '!' for {followed} of {len(seeds)} seeds")


if __name__ == "__main__":
    main()
