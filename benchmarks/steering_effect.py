"""The steering effect, measured: does Drift write what each simulated user prefers?

For each simulated user, a profile is fitted on `--pairs` of the pairs it decides among the
candidate answers of `--candidates` (as `benchmarks/simulated_users.py` writes them; by
default the committed report set). Then the LLM answers every prompt of `--prompts` (prompts in none of
the pairs) plainly and with Drift, with the same seed, and the user's own rule judges each
(Drift, plain) pair: the paper's Table 2 with the rule as the gold judge. A Drift answer
only wins when it is also fluent (`drift_local/drift/fluency.py`): at least as likely under
the plain LLM, per token, as the 10th percentile of the plain answers, and not degenerate.

    python benchmarks/steering_effect.py [--out results.json]

Every answer of a run is written by one BatchDecoder, so all of them share each
`llama_decode`. Only the fitted pairs are scored (cached in DRIFT_LOCAL_HOME's store; use
the data builder's home to reuse its scores). Results go to `--out` as JSON, one record
per answer.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).parent
    parser.add_argument("--candidates", default=str(here / "data" / "candidates_report.json"), help="candidate answers the users' pairs come from")
    parser.add_argument("--prompts", default=str(here / "data" / "prompts_steer_report.txt"), help="new prompts to answer, one a line")
    parser.add_argument("--first-candidates", type=int, default=None, help="fit on pairs from the first N candidate prompts only")
    parser.add_argument("--first-prompts", type=int, default=None, help="answer only the first N new prompts")
    parser.add_argument("--users", default="all")
    parser.add_argument("--pairs", type=int, default=40, help="pairs each profile is fitted on")
    parser.add_argument("--method", default=None, help="fit method (default: fit's default)")
    parser.add_argument("--betas", default=None, help="comma separated (default: 0.5,1,2 and the default β)")
    parser.add_argument("--ks", default="7,all", help="attributes used in decoding, comma separated")
    parser.add_argument("--weight-scales", default=None, help="unit (the paper's p = w/|w|) and/or fitted, comma separated (default: the default)")
    parser.add_argument("--plausibility", type=float, default=None, help="α (default: the default)")
    parser.add_argument("--kl-budget", type=float, default=None, help="nats a token (default: the default)")
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--repeat-penalty", type=float, default=None, help="(default: the default; 1 is off)")
    parser.add_argument("--no-repeat-ngram", type=int, default=None, help="(default: the default; 0 is off)")
    parser.add_argument("--style-gain", type=float, default=1.0, help="multiply the fitted style weights (1: as fitted)")
    parser.add_argument("--dry-multiplier", type=float, default=None, help="(default: the default; 0 is off)")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0, help="pairs drawn and answers sampled with this seed")
    parser.add_argument("--out", default=None, help="write every answer and verdict here (JSON)")
    args = parser.parse_args()

    from drift_local.config import Settings
    from drift_local.drift.sampling import Sampler, SamplerSettings
    from drift_local.drift.steering import Decoding
    from drift_local.drift.style import STYLE_NAMES
    from drift_local.engine.template import Message
    from drift_local.engine.context import ContextSettings
    from drift_local.store.store import Pair, Store
    from drift_local.sessions.decoder import BatchDecoder, Request
    from drift_local.sessions.fit import DEFAULT_METHOD, fit_profile, steering_from_fit
    from drift_local.sessions.rate import read_prompts
    from drift_local.sessions.runtime import open_models
    from drift_local.sessions.simulated_users import SIMULATED_USERS, decided_pairs

    settings = Settings()
    method = args.method or DEFAULT_METHOD
    betas = [float(b) for b in (args.betas or f"0.5,1,2,{settings.beta}").split(",")]
    betas = sorted(set(betas))
    ks = args.ks.split(",")
    scales = (args.weight_scales or settings.weight_scale).split(",")
    configs = [(k, scale, beta) for k in ks for scale in scales for beta in betas]
    alpha = settings.plausibility if args.plausibility is None else args.plausibility
    budget = settings.kl_budget if args.kl_budget is None else args.kl_budget
    overrides = {"temperature": args.temperature, "top_p": args.top_p, "repeat_penalty": args.repeat_penalty, "no_repeat_ngram": args.no_repeat_ngram, "dry_multiplier": args.dry_multiplier}
    sampling = replace(settings.sampler(), **{k: v for k, v in overrides.items() if v is not None})
    users = list(SIMULATED_USERS) if args.users == "all" else args.users.split(",")
    prompts = read_prompts(args.prompts)[: args.first_prompts]
    candidates = json.loads(Path(args.candidates).read_text())[: args.first_candidates]
    if {item["prompt"] for item in candidates} & set(prompts):
        raise SystemExit("the prompts to answer must be new: some are in the candidates' prompts")
    models = open_models(settings)
    started = time.perf_counter()

    # 1. One profile per user, fitted on --pairs of its pairs.
    steerings = {}
    with Store.open() as store:
        for user in list(users):
            pairs = [Pair(*pair, source=f"simulated:{user}") for pair in decided_pairs(candidates, SIMULATED_USERS[user])]
            if not pairs:  # the candidates never differ in this user's trait
                print(f"{user}: no decided pairs among the candidates; left out", flush=True)
                users.remove(user)
                continue
            rng = np.random.default_rng(args.seed)
            sample = [pairs[i] for i in rng.choice(len(pairs), min(args.pairs, len(pairs)), replace=False)]
            name = f"steer-{user}-{args.seed}"
            if any(p.name == name for p in store.list_profiles()):
                store.delete_profile(name)
            profile = store.create_profile(name)
            store.add_pairs(profile, sample)
            outcome = fit_profile(store, profile, models.slm, settings.context(), method=method)
            for k in ks:
                for scale in scales:
                    steering = steering_from_fit(outcome.record, store, profile, 10**6 if k == "all" else int(k), scale)
                    steerings[(user, k, scale)] = replace(steering, style_weights=steering.style_weights * args.style_gain)
            shown = steerings[(user, ks[0], scales[0])]
            top = ", ".join(f"{n} {w:+.3f}" for n, w in zip(shown.names, shown.weights))
            style = ", ".join(
                f"{n} {w:+.2f}" + (f" (to {c:.1f})" if w > 0 and np.isfinite(c) else "")
                for n, w, c in zip(STYLE_NAMES, shown.style_weights, shown.style_ceilings) if w
            ) or "none"
            print(f"{user}: fitted on {len(sample)} pairs ({method}); end bias {shown.end_bias:+.2f}; style: {style}; top: {top}", flush=True)

    # 2. Every answer in one batch: plain once per prompt, Drift per user, β and k.
    def request(prompt: str, steering, beta: float) -> Request:
        decoding = Decoding(beta, plausibility=alpha, kl_budget=budget)
        sampler = Sampler(SamplerSettings(**{**sampling.__dict__, "seed": args.seed}))
        return Request([Message("user", prompt)], steering, decoding, sampler, args.max_tokens, stats=True)

    plain = {prompt: request(prompt, None, math.inf) for prompt in prompts}
    drift = {(user, config, prompt): request(prompt, steerings[(user, *config[:2])], config[2]) for user in users for config in configs for prompt in prompts}
    everything = [*plain.values(), *drift.values()]
    # Four answers at once: on a 2-core CPU that is where sharing a step stops paying
    # (benchmarks/decode_batch.py: 1.6x one answer's tokens/s at 2 and at 4), and it bounds memory.
    n_seq = 4 * (max(s.k for s in steerings.values()) + 2)
    batch = BatchDecoder(models, ContextSettings(n_ctx=1024, threads=settings.threads), n_seq=n_seq, n_cells=n_seq * (args.max_tokens + 96))
    done, tokens = 0, 0
    waiting = list(everything)
    while waiting or batch.active:
        while waiting and batch.admit(waiting[0]):
            waiting.pop(0)
        finished = 0
        for _, step in batch.step():
            if step is None:
                finished += 1
            else:
                tokens += 1
        done += finished
        elapsed = time.perf_counter() - started
        if finished:
            print(f"\r{done}/{len(everything)} answers, {tokens} tokens, {elapsed:.0f} s", end="", flush=True)
    print()

    # 3. Fluency threshold from the plain answers; verdicts by each user's rule.
    plain_logprobs = np.array([r.answer.mean_llm_logprob() for r in plain.values()])
    threshold = float(np.percentile(plain_logprobs, 10))
    from drift_local.drift.fluency import Fluency, degeneration

    records = []
    for (user, (k, scale, beta), prompt), req in drift.items():
        rule = SIMULATED_USERS[user]
        ours, theirs = req.answer, plain[prompt].answer
        fluency = Fluency(ours.mean_llm_logprob(), degeneration(ours.text))
        verdict = rule.choose(ours.text, theirs.text)
        outcome = "loss" if not fluency.fluent(threshold) else {"first": "win", "second": "loss", "tie": "tie"}[verdict]
        records.append({
            "user": user, "k": k, "weight_scale": scale, "beta": beta, "prompt": prompt, "outcome": outcome, "rule": verdict,
            "fluent": fluency.fluent(threshold), "degeneration": fluency.degeneration,
            "drift_logprob": fluency.mean_logprob, "plain_logprob": theirs.mean_llm_logprob(),
            "drift_tokens": len(ours.tokens), "plain_tokens": len(theirs.tokens), "drift": ours.text, "plain": theirs.text,
        })
    summary = summarize(records, users, configs)
    print_table(summary, users, configs, threshold, plain_logprobs, method, alpha, budget, sampling, (str(settings.attributes), settings.weight_scale, settings.beta), args, time.perf_counter() - started)
    if args.out:
        Path(args.out).write_text(json.dumps({"threshold": threshold, "summary": summary, "answers": records}, indent=1))


def config_key(user: str, config: tuple) -> str:
    k, scale, beta = config
    return f"{user}|{k}|{scale}|{beta:g}"


def summarize(records: list[dict], users: list[str], configs: list[tuple]) -> dict:
    summary = {}
    for user in users:
        for config in configs:
            rows = [r for r in records if (r["user"], (r["k"], r["weight_scale"], r["beta"])) == (user, config)]
            wins = sum(r["outcome"] == "win" for r in rows)
            ties = sum(r["outcome"] == "tie" for r in rows)
            summary[config_key(user, config)] = {
                "n": len(rows), "wins": wins, "ties": ties, "losses": len(rows) - wins - ties,
                "win_rate": (wins + ties / 2) / len(rows),  # a tie counts half, a non-fluent answer is a loss
                "fluent": sum(r["fluent"] for r in rows) / len(rows),
                "drift_logprob": float(np.mean([r["drift_logprob"] for r in rows])),
                "plain_logprob": float(np.mean([r["plain_logprob"] for r in rows])),
                "drift_tokens": float(np.mean([r["drift_tokens"] for r in rows])),
                "plain_tokens": float(np.mean([r["plain_tokens"] for r in rows])),
            }
    return summary


def print_table(summary, users, configs, threshold, plain_logprobs, method, alpha, budget, sampling, defaults, args, seconds) -> None:
    from drift_local.sessions.simulated_users import DEV_USERS

    print(f"\nsteering effect: {args.pairs} pairs a user, {method} fit, α {alpha:g}, KL budget {budget:g}, "
          f"temperature {sampling.temperature:g}, top-p {sampling.top_p:g}, repeat penalty {sampling.repeat_penalty:g}, no-repeat n-gram {sampling.no_repeat_ngram}, DRY {sampling.dry_multiplier:g}, style gain {args.style_gain:g}, seed {args.seed}, {seconds:.0f} s")
    print(f"fluent = mean log-prob under the plain LLM ≥ {threshold:.2f} nats/token (10th percentile of plain answers; "
          f"median {np.median(plain_logprobs):.2f}) and not degenerate")
    print("win rate: (wins + ties/2) / prompts; a Drift answer that is not fluent counts as a loss; "
          "† defaults were chosen on this user (on other prompts); * the defaults (k, weights, β)\n")
    print(f"{'user':16s} {'k':>4s} {'weights':>7s} {'β':>5s} {'win rate':>8s} {'W/T/L':>9s} {'fluent':>7s} {'log-prob':>9s} {'tokens':>13s}")
    for user in users:
        for config in configs:
            k, scale, beta = config
            s = summary[config_key(user, config)]
            mark = " *" if config == defaults else ""
            print(f"{user + (' †' if user in DEV_USERS else ''):16s} {k:>4s} {scale:>7s} {beta:5g} {s['win_rate']:8.2f} {s['wins']:3d}/{s['ties']:2d}/{s['losses']:2d} "
                  f"{s['fluent']:7.0%} {s['drift_logprob']:9.2f} {s['drift_tokens']:6.0f} vs {s['plain_tokens']:4.0f}{mark}")
    for config in configs:
        k, scale, beta = config
        rates = [summary[config_key(u, config)]["win_rate"] for u in users]
        print(f"k {k:>3s}, {scale} weights, β {beta:g}: mean win rate {np.mean(rates):.2f}, users at ≥ 0.60: {sum(r >= 0.6 for r in rates)} of {len(users)}")


if __name__ == "__main__":
    main()
