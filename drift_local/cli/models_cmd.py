"""`drift-local models`: the known GGUF models, downloading them, and where they are on disk.

huggingface_hub is imported only when a download starts, so `--help` and completion stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from drift_local import config
from drift_local.catalog.catalog import (
    EMBEDDED_NAME,
    CatalogEntry,
    delete_download,
    entry_path,
    find_download,
    is_embedded,
    load_catalog,
    pulled_hub_files,
    resolve_model,
)
from drift_local.catalog.pull import pull
from drift_local.cli.app import app
from drift_local.cli.common import console, print_json
from drift_local.errors import DriftError

models_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(
    models_app,
    name="models",
    help="List, download and remove GGUF models (a catalogue of known models, or any GGUF on Hugging Face).",
)

SpecArgument = Annotated[
    str, typer.Argument(metavar="NAME|REPO/FILE", help="A catalogue name or OWNER/REPO/FILE.gguf.")
]


def _default_names() -> dict[str, str]:
    """The configured model spec per role ("llm", "slm"), with the embedded model by its name."""
    settings = config.load_settings()
    specs = {"llm": settings.llm, "slm": settings.slm}
    return {role: EMBEDDED_NAME if is_embedded(spec) else spec for role, spec in specs.items()}


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


def model_rows(defaults: dict[str, str]) -> list[dict[str, Any]]:
    """Every catalogue model, then every other file `pull REPO/FILE` downloaded."""
    rows = [_catalog_row(entry, defaults) for entry in load_catalog().values()]
    rows += [_hub_file_row(spec, path, defaults) for spec, path in pulled_hub_files().items()]
    return rows


def _human_size(row: dict[str, Any]) -> str:
    size = float(row["size_bytes"])
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000
    return f"{'' if row['size_exact'] else '~'}{size:.3g} {unit}"


def _downloaded_cell(row: dict[str, Any]) -> str:
    if row["embedded"]:
        return "[cyan]embedded[/]" if row["downloaded"] else "[red]missing[/]"
    return "[green]yes[/]" if row["downloaded"] else "[dim]no[/]"


def _table(rows: list[dict[str, Any]], defaults: dict[str, str]) -> Table:
    caption = (
        f"default llm: {defaults['llm']}, default slm: {defaults['slm']} "
        "(change with `drift-local config set llm|slm NAME`; --llm/--slm override them for one run)"
    )
    table = Table(title="Models", title_justify="left", caption=caption, caption_justify="left")
    for column in ("name", "role", "tokenizer", "size", "downloaded", "default"):
        table.add_column(column, no_wrap=True)
    table.add_column("path", overflow="fold")
    for row in rows:
        table.add_row(
            escape(row["name"]),
            row["role"] or "-",
            escape(row["tokenizer"] or "?"),
            _human_size(row),
            _downloaded_cell(row),
            ", ".join(row["default_for"]),
            escape(_path_cell(row)),
        )
    return table


def _path_cell(row: dict[str, Any]) -> str:
    """Short enough for a laptop terminal; `models path NAME` prints the full path."""
    if row.get("embedded"):
        return "(built in)"
    path = row["path"]
    return path.replace(str(Path.home()), "~", 1) if path else "-"


@models_app.command("list")
def list_cmd(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List the known models: role, tokenizer family, size, whether downloaded, and where.

    Pair an LLM and an SLM of the same tokenizer family. smollm2-135m is embedded (always there).
    """
    defaults = _default_names()
    rows = model_rows(defaults)
    if as_json:
        print_json(rows)
        return
    console.print(_table(rows, defaults))
    console.print("[dim]download one with: drift-local models pull NAME[/]")


@models_app.command("pull")
def pull_cmd(
    spec: SpecArgument,
    endpoint: Annotated[
        str | None,
        typer.Option(help="Hub URL, e.g. a mirror (default: $HF_ENDPOINT, else https://huggingface.co)."),
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Branch, tag or commit (default: main).")] = None,
) -> None:
    """Download a model into the models folder (resumes a dropped connection; checks the file is GGUF).

    Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE=1.
    """
    path = pull(spec, endpoint=endpoint, revision=revision, progress=True)
    console.print(f"[green]ready:[/] {escape(spec)} -> {escape(str(path))}", highlight=False, soft_wrap=True)


@models_app.command("path")
def path_cmd(
    spec: Annotated[str, typer.Argument(metavar="NAME", help="A model name, REPO/FILE or .gguf path.")],
) -> None:
    """Print the path of a downloaded model, and nothing else (for scripts); fails if it is not there."""
    typer.echo(str(resolve_model(spec).path))


@models_app.command("rm")
def rm_cmd(
    spec: SpecArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a downloaded model. The embedded model cannot be removed."""
    download = find_download(spec)
    if not yes and not typer.confirm(f"delete {download.path}?"):
        raise typer.Abort()
    delete_download(download)
    console.print(f"removed {escape(spec)} ({escape(str(download.path))})", highlight=False, soft_wrap=True)
