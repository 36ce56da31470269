"""Simulated users you can't overfit: pairs of varied answers, chosen by a hidden rule.

For each prompt of a prompt file, the LLM writes several candidate answers, each under a
different system prompt (one of the paper's attribute prompts or a style instruction: a
list, a personal story, figures, a question back, …), with its own seed and length limit.
Every two answers to one prompt make a pair, and each programmatic user
(`drift_local/sessions/simulated_users.py`: fewer words, more words, no contractions,
exclamation marks, questions, anecdotes, lists, numbers, hedging) decides it by its rule;
ties are left out. The result is one pairs file per user that `drift-local eval` and
`drift-local profile import` read:

    python benchmarks/simulated_users.py --candidates benchmarks/data/candidates_report.json --out DIR
    drift-local eval --data DIR/users/fewer-words.jsonl

The candidates behind the README's figures are committed (`benchmarks/data/candidates_*.json`),
so the command above rebuilds exactly those pairs; with `--prompts FILE` and a new
`--candidates` path it writes new candidates first (minutes). All answers are then scored
under the base and attribute prompts (only what the score cache lacks; about 30 minutes for
180 answers on 2 cores), so the evals that follow are instant. Set DRIFT_LOCAL_HOME to keep
that cache apart from your own.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

STYLES = (
    "Answer in one short sentence.",
    "Answer with a bulleted list.",
    "Answer with a short personal story from your own life.",
    "Give specific numbers, figures and dates in your answer.",
    "End your answer by asking the reader a question.",
    "Be enthusiastic! Use exclamation marks.",
    "Be cautious: hedge your claims with words like might and perhaps.",
    "Write a detailed, thorough answer.",
    "Write in a formal register, without contractions.",
    "Write casually, like a text message to a friend.",
)
LENGTHS = (48, 96, 160)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", required=True, help="candidate answers (JSON): read if it exists, else written from --prompts")
    parser.add_argument("--prompts", help="one prompt a line; # starts a comment (to write new candidates)")
    parser.add_argument("--out", required=True, help="folder for users/NAME.jsonl")
    parser.add_argument("--answers", type=int, default=6, help="candidate answers per prompt")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="token limits to draw each answer's from")
    parser.add_argument("--styles", type=int, default=None, help="answers per prompt written under a style instruction (default: half)")
    parser.add_argument("--keep-cut", action="store_true", help="keep answers cut by the token limit as they are (default: back to the last whole sentence)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-score", action="store_true", help="write candidates and pairs only")
    parser.add_argument("--first", type=int, default=None, help="use only the candidates of the first N prompts (a shorter run)")
    args = parser.parse_args()

    from drift_local.sessions.rate import read_prompts

    out = Path(args.out)
    (out / "users").mkdir(parents=True, exist_ok=True)
    candidates_path = Path(args.candidates)
    if candidates_path.exists():
        candidates = json.loads(candidates_path.read_text())
    else:
        if not args.prompts:
            parser.error(f"{candidates_path} does not exist: give --prompts to write it")
        lengths = tuple(int(n) for n in args.lengths.split(","))
        n_styles = args.answers // 2 if args.styles is None else args.styles
        candidates = write_candidates(read_prompts(args.prompts), args.answers, n_styles, lengths, args.temperature, args.seed, args.keep_cut)
        candidates_path.write_text(json.dumps(candidates, indent=1))
    candidates = candidates[: args.first]
    write_user_pairs(candidates, out / "users")
    if not args.no_score:
        score(candidates)


def write_candidates(
    prompts: list[str], n_answers: int, n_styles: int, lengths: tuple[int, ...], temperature: float, seed: int, keep_cut: bool
) -> list[dict]:
    import numpy as np

    from drift_local.attributes import paper_attributes
    from drift_local.config import Settings
    from drift_local.drift.sampling import Sampler, SamplerSettings
    from drift_local.drift.steering import Decoding
    from drift_local.engine.template import Message
    from drift_local.sessions.decoder import Answer, DriftDecoder
    from drift_local.sessions.rate import whole_sentences
    from drift_local.sessions.runtime import open_models

    settings = Settings()
    decoder = DriftDecoder(open_models(settings), 0, settings.context())
    writers = paper_attributes().prompts
    rng = np.random.default_rng(seed)
    started, written = time.perf_counter(), []
    for n, prompt in enumerate(prompts, 1):
        chosen = [writers[i] for i in rng.choice(len(writers), n_answers - n_styles, replace=False)]
        chosen += [STYLES[i] for i in rng.choice(len(STYLES), n_styles, replace=False)]
        answers = []
        for writer in chosen:
            decoder.llm_system = writer
            answer = Answer()
            sampler = Sampler(SamplerSettings(temperature=temperature, top_p=0.9, seed=int(rng.integers(2**31))))
            max_tokens = int(rng.choice(lengths))
            for _ in decoder.stream([Message("user", prompt)], None, decoding=Decoding(float("inf")), sampler=sampler, max_tokens=max_tokens, answer=answer):
                pass
            text = answer.text.strip()
            answers.append({"writer": writer, "max_tokens": max_tokens, "text": whole_sentences(text) if answer.stop == "length" and not keep_cut else text})
        written.append({"prompt": prompt, "answers": answers})
        print(f"prompt {n}/{len(prompts)} written ({time.perf_counter() - started:.0f} s)", flush=True)
    return written


def write_user_pairs(candidates: list[dict], folder: Path) -> None:
    from drift_local.sessions.simulated_users import SIMULATED_USERS, decided_pairs

    for user in SIMULATED_USERS.values():
        pairs = decided_pairs(candidates, user)
        lines = [json.dumps({"prompt": p, "chosen": c, "rejected": r, "source": f"simulated:{user.name}"}) for p, c, r in pairs]
        (folder / f"{user.name}.jsonl").write_text("".join(line + "\n" for line in lines))
        print(f"{user.name:16s} {len(lines):4d} pairs ({user.description})")


def score(candidates: list[dict]) -> None:
    from drift_local.attributes import paper_attributes
    from drift_local.config import Settings
    from drift_local.store.store import Store
    from drift_local.sessions.rewards import RewardCache
    from drift_local.store.store import Pair
    from drift_local.sessions.runtime import open_slm

    settings = Settings()
    pairs = [
        Pair(item["prompt"], a["text"], a["text"]) for item in candidates for a in item["answers"] if a["text"]
    ]
    started = time.perf_counter()
    with Store.open() as store:
        cache = RewardCache(store, open_slm(settings), settings.context())
        done = [0]

        def progress(total: int):
            def advance(n: int) -> None:
                done[0] += n
                elapsed = time.perf_counter() - started
                print(f"scored {done[0]}/{total} tokens ({elapsed:.0f} s, {done[0] / max(elapsed, 1e-9):.0f} tok/s)", flush=True)
            return advance

        total = cache.fill_missing(pairs, paper_attributes(), progress)
    print(f"scoring done: {total} tokens in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
