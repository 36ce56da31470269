"""Inputs and moments that used to end in a traceback or a misleading message: each ends in
one line and a documented exit code (README: 1 error, 130 interrupted), and loses nothing."""

from __future__ import annotations

import json
import os
import signal

import pytest

from drift_local.engine.context import ContextSettings
from drift_local.engine.model import load_model
from drift_local.engine.scoring import Scorer
from drift_local.errors import DriftError
from drift_local.store.store import Pair, Store
from drift_local.sessions.fit import fit_profile, profile_steering


def one_error_line(err: str, needle: str) -> None:
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("error:") and needle in lines[0], err
    assert len(lines) <= 2 and all(line.startswith(("error:", "hint:")) for line in lines), err


@pytest.mark.parametrize(
    "line, needle",
    [
        ('{"prompt": "p", "chosen": "c", "rejected": "r", "x": 1' + "7" * 5000 + "}", "a number too long"),
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"prompt": "p\\ud800", "chosen": "c", "rejected": "r"}', "lone surrogate"),
    ],
)
def test_unreadable_json_lines_are_named_in_one_line(cli, tmp_path, line, needle):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "ok", "chosen": "c", "rejected": "r"}) + "\n" + line + "\n")
    result = cli("profile", "import", "me", str(path))
    assert result.code == 1
    one_error_line(result.err, needle)
    assert "line 2" in result.err


def test_an_early_ctrl_c_is_one_line_and_exit_130(cli, monkeypatch):
    from drift_local.cli import app

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "_register", interrupted)
    result = cli("profile", "list")
    assert result.code == 130 and result.err.strip() == "interrupted"


def test_an_unexpected_error_is_one_line_not_a_traceback(cli, monkeypatch):
    monkeypatch.setattr(Store, "list_profiles", lambda self: {}["boom"])
    result = cli("profile", "list")
    assert result.code == 1
    one_error_line(result.err, "unexpected KeyError: 'boom'")


def test_ctrl_c_just_after_an_import_commits_still_reports_it(cli, tmp_path, monkeypatch):
    """A real SIGINT, delivered while the import's transaction runs."""
    original = Store.add_pairs

    def add_then_interrupt(self, profile, pairs):
        ids = original(self, profile, pairs)
        os.kill(os.getpid(), signal.SIGINT)
        return ids

    monkeypatch.setattr(Store, "add_pairs", add_then_interrupt)
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n")
    result = cli("profile", "import", "me", str(path))
    assert result.code == 0, result.err
    assert "imported 1 pair into 'me'" in result.out and "it finished first, and is kept" in result.err
    monkeypatch.setattr(Store, "add_pairs", original)
    assert json.loads(cli("profile", "list", "--json").out)[0]["n_pairs"] == 1


def test_a_fit_on_ties_only_says_so(tiny_gguf):
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, [Pair("p", "a", "b", tie=True), Pair("q", "c", "d", tie=True)])
        with pytest.raises(DriftError, match="holds only ties \\(2 pairs with no preferred answer\\)"):
            fit_profile(store, profile, load_model(tiny_gguf), ContextSettings(n_ctx=512))
        steering, notice = profile_steering(store, profile, load_model(tiny_gguf), ContextSettings(n_ctx=512), 7)
        assert steering is None and "only ties" in notice


def test_ctrl_c_in_fit_says_what_was_kept(cli, tiny_gguf, monkeypatch):
    with Store.open() as store:
        store.add_pairs(store.create_profile("me"), [Pair(f"question {i}", f"short {i}.", f"long answer {i}.") for i in range(2)])
    original, calls = Scorer.score, []

    def interrupted_on_the_second_chunk(self, requests, progress=None):
        calls.append(len(requests))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, requests, progress)

    monkeypatch.setattr(Scorer, "score", interrupted_on_the_second_chunk)
    result = cli("fit", "--profile", "me", "--slm", str(tiny_gguf), "--n-ctx", "512")
    assert result.code == 130
    kept = 2 * calls[0]  # two responses per request, all of the first chunk
    assert f"interrupted: the {kept} scores computed before it are stored; fit again" in result.err
    with Store.open() as store:
        assert len(store._rows("SELECT 1 FROM logprob_cache")) == kept


def test_a_pair_too_long_to_score_is_left_out_never_blocking_the_profile(cli, tiny_gguf):
    model = load_model(tiny_gguf)  # trained context: 512 tokens
    with Store.open() as store:
        profile = store.create_profile("me")
        [long_id, *_] = store.add_pairs(profile, [
            Pair("the " * 600, "a short answer.", "a much longer answer you are."),
            Pair("a question", "a short answer.", "a much longer answer you are."),
        ])
        outcome = fit_profile(store, profile, model, ContextSettings(n_ctx=512))
        assert outcome.record.n_pairs == outcome.fit.n_pairs == 1 and outcome.record.n_left_out == 1
        assert "1 of the 2 pairs of 'me' do not fit the scoring context of 512 tokens" in outcome.notice
        assert f"(#{long_id})" in outcome.notice
        steering, notice = profile_steering(store, profile, model, ContextSettings(n_ctx=512), 7)
        assert steering is not None and notice is None  # the fit is current: no rescoring, no repeat of the note
    result = cli("fit", "--profile", "me", "--slm", str(tiny_gguf), "--n-ctx", "512")
    assert result.code == 0 and "note:" in result.err and "left out" in result.err, result.err
    generated = cli("generate", "--llm", str(tiny_gguf), "--profile", "me", "--max-tokens", "4", "--n-ctx", "512", "hi")
    assert generated.code == 0, generated.err


def test_a_profile_whose_pairs_are_all_too_long_says_what_to_do(tiny_gguf):
    with Store.open() as store:
        profile = store.create_profile("me")
        store.add_pairs(profile, [Pair("the " * 600, "a.", "b.")])
        with pytest.raises(DriftError, match="1 of the 1 pairs .* left out") as caught:
            fit_profile(store, profile, load_model(tiny_gguf), ContextSettings(n_ctx=512))
        assert "--n-ctx" in caught.value.hint
