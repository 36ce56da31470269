"""The CLI as a user meets it: real processes, real models, one clear line for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest



def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drift_local", *args],
        capture_output=True, text=True, input=stdin, env=os.environ.copy(), timeout=300,
    )


def assert_clean_error(result: subprocess.CompletedProcess, needle: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    assert needle in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[0].startswith("error:"), result.stderr


def test_generate_streams_an_answer_with_the_tiny_model(tiny_gguf):
    result = run("generate", "--llm", str(tiny_gguf), "--slm", str(tiny_gguf), "--greedy", "--max-tokens", "8", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_generate_json_reports_entropy_and_speed(tiny_gguf):
    result = run("generate", "--llm", str(tiny_gguf), "--seed", "1", "--max-tokens", "6", "--json", "hello")
    data = json.loads(result.stdout)
    assert data["tokens"] == len(data["entropy_bits"]["llm"]) or data["stop"] == "eos"
    assert data["tokens_per_second"] > 0 and data["attributes"] == []


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda d, t: d / "missing.gguf", "no such model file"),
        (lambda d, t: (d / "notes.gguf").write_text("hi") and d / "notes.gguf", "not a GGUF"),
        (lambda d, t: (d / "cut.gguf").write_bytes(t.read_bytes()[:5000]) and d / "cut.gguf", "cannot load model"),
    ],
)
def test_bad_model_files(tmp_path, tiny_gguf, make, needle):
    assert_clean_error(run("generate", "--llm", str(make(tmp_path, tiny_gguf)), "hi"), needle)


def test_mismatched_tokenizers(tiny_gguf, tiny_gguf_other_vocab):
    result = run("generate", "--llm", str(tiny_gguf), "--slm", str(tiny_gguf_other_vocab), "hi")
    assert_clean_error(result, "do not share a tokenizer")
    assert tiny_gguf.name in result.stderr and tiny_gguf_other_vocab.name in result.stderr


def test_prompt_longer_than_context(tiny_gguf):
    result = run("generate", "--llm", str(tiny_gguf), "--n-ctx", "64", "word " * 200)
    assert_clean_error(result, "does not fit the context")


def test_unknown_profile_and_bad_beta(tiny_gguf):
    assert_clean_error(run("generate", "--llm", str(tiny_gguf), "--profile", "nobody", "hi"), "no profile named 'nobody'")
    assert_clean_error(run("generate", "--llm", str(tiny_gguf), "--beta", "0", "hi"), "beta must be a number >= 0.001")
    assert_clean_error(run("generate", "--llm", str(tiny_gguf), "--beta", "-2", "hi"), "beta must be a number >= 0.001")


def test_unreadable_or_empty_prompt_files(tmp_path, tiny_gguf):
    rate = ["rate", "--llm", str(tiny_gguf), "--profile", "me", "--non-interactive", "--choose-by", "fewer-words", "--prompts"]
    assert_clean_error(run(*rate, str(tmp_path / "missing.txt")), "cannot read prompts")
    (tmp_path / "comments.txt").write_text("# only a comment\n")
    assert_clean_error(run(*rate, str(tmp_path / "comments.txt")), "has no prompts")


def test_profile_without_pairs_decodes_plainly_with_a_notice(tiny_gguf):
    assert run("profile", "create", "empty").returncode == 0
    result = run("generate", "--llm", str(tiny_gguf), "--profile", "empty", "--max-tokens", "4", "hi")
    assert result.returncode == 0, result.stderr
    assert "no preference pairs" in result.stderr and "plain decoding" in result.stderr


def test_help_explains_every_command():
    result = run("--help")
    for command in ("demo", "chat", "generate", "fit", "profile", "models", "config"):
        assert command in result.stdout
    assert "--beta" in run("chat", "--help").stdout


def test_usage_errors_print_usage_not_a_traceback(tiny_gguf):
    result = run("generate", "--no-such-flag", "hi")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "No such option" in result.stderr
