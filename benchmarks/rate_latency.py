"""Time from a keypress to updated weights on screen in `drift-local rate`.

The candidates are scored while the person reads; this measures what follows a keypress:
the pair stored durably, p refit from cached rewards, the fit saved, the screen redrawn.

    python benchmarks/rate_latency.py [--pairs 8] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

from rich.console import Console


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="pairs already in the profile")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ["DRIFT_LOCAL_HOME"] = tempfile.mkdtemp(prefix="drift-rate-bench-")

    from drift_local.attributes import paper_attributes
    from drift_local.cli.rate_screen import _view
    from drift_local.config import Settings
    from drift_local.drift.steering import Decoding
    from drift_local.store.store import Store
    from drift_local.sessions.decoder import DriftDecoder
    from drift_local.sessions.rate import Rater, RateSession, score_candidates, write_candidates
    from drift_local.sessions.rewards import RewardCache
    from drift_local.sessions.runtime import open_models

    settings = Settings()
    models = open_models(settings)
    ctx = settings.context()
    attributes = paper_attributes()
    decoder = DriftDecoder(models, 1, ctx)
    store = Store.open()
    profile = store.create_profile("bench")
    cache = RewardCache(store, models.slm, ctx, 24)
    rater = Rater(store, profile, attributes, cache, seed=0)
    screen = RateSession.__new__(RateSession)  # only what the screen draws is used
    screen.rater, screen.n, screen.round, screen.moved = rater, 99, 0, []
    sink = Console(file=io.StringIO(), width=150)

    print(f"scoring {args.pairs + args.repeats} pairs first (cap 24 tokens; not part of the latency)...", flush=True)
    written = []
    for i in range(args.pairs + args.repeats):
        attribute, seed = rater.ask_about()
        candidates = write_candidates(decoder, attributes, f"({i}) How do I relax after work?", attribute, decoding=Decoding(1.0), max_tokens=24, seed=seed)
        score_candidates(cache, attributes, candidates)
        written.append(candidates)
    for candidates in written[: args.pairs]:
        rater.choose(candidates, "first")
    timings = []
    for candidates in written[args.pairs :]:
        started = time.perf_counter()
        rater.choose(candidates, "first")  # store + refit + save the fit
        sink.print(_view(screen, candidates, None, ""))  # redraw
        timings.append(time.perf_counter() - started)
    print(f"keypress to updated weights on screen, {args.pairs}+ pairs in the profile: "
          f"median {statistics.median(timings) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms (bar: 500 ms)")


if __name__ == "__main__":
    main()
