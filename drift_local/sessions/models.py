"""The models `drift-local models list` shows: the catalogue's, then any other GGUF that
`models pull REPO/FILE` downloaded, each with where it is and which role it is the default for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drift_local import config
from drift_local.catalog.catalog import EMBEDDED_NAME, CatalogEntry, entry_path, is_embedded, load_catalog, pulled_hub_files
from drift_local.errors import DriftError


def default_names() -> dict[str, str]:
    """The configured model spec per role ("llm", "slm"), with the embedded model by its name."""
    settings = config.load_settings()
    specs = {"llm": settings.llm, "slm": settings.slm}
    return {role: EMBEDDED_NAME if is_embedded(spec) else spec for role, spec in specs.items()}


def model_rows(defaults: dict[str, str]) -> list[dict[str, Any]]:
    """Every catalogue model, then every other file `pull REPO/FILE` downloaded."""
    rows = [_catalog_row(entry, defaults) for entry in load_catalog().values()]
    rows += [_hub_file_row(spec, path, defaults) for spec, path in pulled_hub_files().items()]
    return rows


def _defaults_of(name: str, defaults: dict[str, str]) -> list[str]:
    return [role for role, spec in defaults.items() if spec == name]


def _existing_path(entry: CatalogEntry) -> str | None:
    try:
        path = entry_path(entry)
    except DriftError:  # the embedded model is missing; `models path` reports why
        return None
    return str(path) if path.is_file() else None


def _catalog_row(entry: CatalogEntry, defaults: dict[str, str]) -> dict[str, Any]:
    path = _existing_path(entry)
    return {
        "name": entry.name,
        "role": entry.role,
        "tokenizer": entry.tokenizer,
        "size_bytes": entry.size_bytes,
        "size_exact": entry.size_exact,
        "downloaded": path is not None,
        "path": path,
        "embedded": entry.embedded,
        "default_for": _defaults_of(entry.name, defaults),
        "repo": entry.repo,
        "file": entry.file,
        "pairs_with": list(entry.pairs_with),
        "description": entry.description,
    }


def _hub_file_row(spec: str, path: Path, defaults: dict[str, str]) -> dict[str, Any]:
    owner, repo_name, file = spec.split("/", 2)
    return {
        "name": spec,
        "role": None,
        "tokenizer": None,
        "size_bytes": path.stat().st_size,
        "size_exact": True,
        "downloaded": True,
        "path": str(path),
        "embedded": False,
        "default_for": _defaults_of(spec, defaults),
        "repo": f"{owner}/{repo_name}",
        "file": file,
        "pairs_with": [],
        "description": "downloaded with `models pull REPO/FILE` (not in the catalogue)",
    }
