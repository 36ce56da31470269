"""Settings: one rule for flags, config set and config.toml; unset; durable writes; verbatim errors."""

from __future__ import annotations

import errno
import os

import pytest

from drift_local import config


def one_line_error(result, needle: str) -> None:
    assert result.code == 1, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and needle in lines[0], result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "key, value, needle",
    [
        ("top_p", "2", "top_p must be a number > 0 and <= 1"),
        ("n_ctx", "10", "n_ctx must be a whole number >= 64"),
        ("beta", "-1", "beta must be a number >= 0.001"),
        ("beta", "1e-300", "beta must be a number >= 0.001"),
        ("max_tokens", "0", "max_tokens must be a whole number >= 1"),
        ("attributes", "100", "<= 64"),
        ("seed", "-5", "seed must be a whole number >= 0"),
        ("reward", "median", "reward must be one of sum, mean"),
        ("temperature", "warm", "temperature must be a number"),
    ],
)
def test_config_set_refuses_values_out_of_range(cli, key, value, needle):
    one_line_error(cli("config", "set", key, value), needle)
    assert not config.config_path().exists()


def test_every_sampling_control_is_stored_and_unset(cli):
    for key, value in (("temperature", "0.3"), ("top_k", "40"), ("min_p", "0.05"), ("repeat_penalty", "1.1"), ("seed", "42"), ("beta", "inf")):
        assert cli("config", "set", key, value).code == 0
    settings = config.load_settings()
    assert (settings.temperature, settings.top_k, settings.min_p, settings.repeat_penalty, settings.seed, settings.beta) == (0.3, 40, 0.05, 1.1, 42, float("inf"))
    assert cli("config", "unset", "seed").code == 0
    assert cli("config", "unset", "temperature").code == 0
    settings = config.load_settings()
    assert settings.seed is None and settings.temperature == config.Settings().temperature and settings.top_k == 40
    one_line_error(cli("config", "unset", "nope"), "unknown setting 'nope'")


def test_flags_obey_the_same_rules_before_any_model_loads(cli, tmp_path):
    missing = str(tmp_path / "not-there.gguf")  # a model error would mean the flag was not checked first
    one_line_error(cli("generate", "--llm", missing, "--seed", "-5", "hi"), "seed must be a whole number >= 0")
    one_line_error(cli("generate", "--llm", missing, "--beta", "1e-300", "hi"), "beta must be a number >= 0.001")
    one_line_error(cli("generate", "--llm", missing, "--top-p", "2", "hi"), "top_p must be")
    rate = ("rate", "--llm", missing, "--profile", "me", "--non-interactive")
    one_line_error(cli(*rate, "--choose-by", "fewer-words", "--seed", "-1"), "seed must be a whole number >= 0")
    one_line_error(cli(*rate, "--choose-by", "nobody"), "unknown --choose-by 'nobody'")


def test_a_hand_edited_config_is_checked_with_a_fix(cli):
    config.config_path().parent.mkdir(parents=True, exist_ok=True)
    config.config_path().write_text("top_p = 5\n")
    result = cli("generate", "hi")
    one_line_error(result, "top_p must be a number > 0 and <= 1")
    assert "config unset top_p" in result.err


def test_mismatched_llm_and_slm_are_refused_by_config_set(cli, tiny_gguf, tiny_gguf_other_vocab, tiny_gguf_padded):
    assert cli("config", "set", "llm", str(tiny_gguf)).code == 0
    one_line_error(cli("config", "set", "slm", str(tiny_gguf_other_vocab)), "do not share a tokenizer")
    assert config.load_settings().slm == ""
    assert cli("config", "set", "slm", str(tiny_gguf_padded)).code == 0


def test_a_full_disk_is_one_line_and_keeps_the_old_config(cli, monkeypatch):
    assert cli("config", "set", "top_k", "5").code == 0
    before = config.config_path().read_text()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(config.os, "fsync", full)
    one_line_error(cli("config", "set", "top_k", "9"), "No space left on device")
    assert config.config_path().read_text() == before
    assert not list(config.config_path().parent.glob("*.tmp"))


def test_error_text_with_brackets_prints_verbatim(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("generate", "--llm", "./[weird].gguf", "hi")
    one_line_error(result, "[weird].gguf")
    result = cli("profile", "import", "me", "drift-local[plot].jsonl")
    one_line_error(result, "drift-local[plot].jsonl")


def test_version(cli):
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("drift-local ")
