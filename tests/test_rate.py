"""`rate`: what to ask, durable choices with undo, simulated users, the scripted session."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from drift_local.attributes import paper_attributes
from drift_local.drift.approx import Fit
from drift_local.drift.steering import Decoding
from drift_local.engine.context import ContextSettings
from drift_local.engine.model import load_model
from drift_local.errors import DriftError
from drift_local.store.store import Store
from drift_local.sessions.decoder import DriftDecoder
from drift_local.sessions.rate import (
    Rater, bundled_prompts, moved, score_candidates, whole_sentences, write_candidates,
)
from drift_local.sessions.rewards import RewardCache
from drift_local.sessions.simulated_users import SIMULATED_USERS
from drift_local.sessions.runtime import Models

SETTINGS = ContextSettings(n_ctx=256)


def test_bundled_prompts_are_many_and_varied():
    prompts = bundled_prompts()
    assert len(prompts) >= 60 and len(set(prompts)) == len(prompts)


def test_simulated_users():
    plain, lively = "It is fine.", "Well, it's really quite fine, isn't it!!"
    choose = {name: user.choose(plain, lively) for name, user in SIMULATED_USERS.items()}
    assert (choose["fewer-words"], choose["more-words"], choose["no-contractions"], choose["exclamations"]) == ("first", "second", "first", "second")
    assert SIMULATED_USERS["fewer-words"].choose("a b", "c d") == "tie"
    # Rates per 100 words, not counts: a long answer does not win by holding more of them.
    assert SIMULATED_USERS["exclamations"].choose("Great!", "Great! " + "and then more words " * 10 + "wow!") == "first"
    assert SIMULATED_USERS["bullets"].choose("Steps:\n- rest\n- eat", "Rest, then eat.") == "first"
    assert SIMULATED_USERS["numbers"].choose("Boil it for 9 minutes.", "Boil it for a while.") == "first"
    assert SIMULATED_USERS["questions"].choose("Why not?", "Because.") == "first"
    assert SIMULATED_USERS["anecdotes"].choose("I once tried this myself.", "People try this.") == "first"
    assert SIMULATED_USERS["hedging"].choose("It might work, perhaps.", "It works.") == "first"
    assert len(SIMULATED_USERS) >= 8


def test_cut_answers_end_at_their_last_whole_sentence():
    assert whole_sentences("Sleep early. Then wake up at the") == "Sleep early."
    assert whole_sentences("Steps:\n1. Rest well.\n2. Eat well and") == "Steps:\n1. Rest well."
    assert whole_sentences('He said "Go!" and then he') == 'He said "Go!"'
    assert whole_sentences("No sentence ends here at all") == "No sentence ends here at all"
    assert whole_sentences("Hi. A much longer second sentence that never ends and goes on") == (
        "Hi. A much longer second sentence that never ends and goes on"  # keeping "Hi." would lose most of it
    )


def test_moved_lists_the_largest_changes_first():
    names = ["a", "b", "c"]
    before = Fit(np.array([0.6, 0.8, 0.0]), np.zeros(3), 1, "paper")
    after = Fit(np.array([0.0, 0.8, 0.6]), np.zeros(3), 2, "paper")
    assert [m[0] for m in moved(before, after, names, top=2)] == ["a", "c"]


def test_rounds_store_choices_refit_and_undo(tiny_gguf):
    model = load_model(tiny_gguf)
    decoder = DriftDecoder(Models(model, model, model.n_vocab), 1, SETTINGS)
    attributes = paper_attributes()
    with Store.open() as store:
        profile = store.create_profile("me")
        cache = RewardCache(store, model, SETTINGS)
        rater = Rater(store, profile, attributes, cache, strategy="active", seed=1)
        asked = set()
        for round_ in range(3):
            attribute, seed = rater.ask_about()
            asked.add(attribute)
            candidates = write_candidates(decoder, attributes, f"question {round_}", attribute, decoding=Decoding(0.5), max_tokens=6, seed=seed)
            score_candidates(cache, attributes, candidates)
            fit = rater.choose(candidates, "first" if round_ % 2 else "second")
        assert len(asked) == 3  # the cold start spreads questions over unasked attributes
        assert store.count_pairs(profile) == 3 and fit is not None and fit.n_pairs == 3
        assert store.latest_fit(profile).n_pairs == 3
        rater.undo()
        assert store.count_pairs(profile) == 2 and rater.fit.n_pairs == 2
        spread = rater.uncertainty()
        assert spread.shape == (41,) and np.all(spread >= 0)
        rater.undo(), rater.undo()
        with pytest.raises(DriftError, match="nothing to undo"):
            rater.undo()


def test_scripted_session_through_the_cli(tiny_gguf):
    result = subprocess.run(
        [sys.executable, "-m", "drift_local", "rate", "--profile", "sim", "--llm", str(tiny_gguf), "--n", "3",
         "--max-tokens", "8", "--non-interactive", "--choose-by", "exclamations", "--strategy", "random"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    rounds = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["round"] for r in rounds] == [1, 2, 3]
    assert all(r["choice"] in ("first", "second", "tie") for r in rounds)
    assert "holds 3 pairs" in result.stderr


def test_rate_needs_a_terminal_or_a_script(tiny_gguf):
    result = subprocess.run([sys.executable, "-m", "drift_local", "rate", "--profile", "x", "--llm", str(tiny_gguf)],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 1 and "needs a terminal" in result.stderr
