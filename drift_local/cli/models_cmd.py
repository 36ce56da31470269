"""`drift-local models`: the known GGUF models, downloading them, and where they are on disk.

huggingface_hub is imported only when a download starts, so `--help` and completion stay fast.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from drift_local.catalog.catalog import delete_download, find_download, resolve_model
from drift_local.catalog.pull import pull
from drift_local.cli import options
from drift_local.cli.app import app
from drift_local.cli.ask import confirmed
from drift_local.cli.common import console, print_json
from drift_local.cli.models_table import models_table
from drift_local.sessions.models import default_names, model_rows

models_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich")
app.add_typer(
    models_app,
    name="models",
    help="List, download and remove GGUF models (a catalogue of known models, or any GGUF on Hugging Face).",
)

SpecArgument = Annotated[
    str, typer.Argument(metavar="NAME|REPO/FILE", help="A catalogue name or OWNER/REPO/FILE.gguf.")
]


@models_app.command("list")
def list_cmd(as_json: options.Json = False) -> None:
    """List the known models: role, tokenizer family, size, whether downloaded, and where.

    Pair an LLM and an SLM of the same tokenizer family. smollm2-135m is embedded (always there).
    """
    defaults = default_names()
    rows = model_rows(defaults)
    if as_json:
        print_json(rows)
        return
    console.print(models_table(rows, defaults))
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
    if not (yes or confirmed(f"delete {download.path}?")):
        console.print(f"kept {escape(spec)}")
        return
    delete_download(download)
    console.print(f"removed {escape(spec)} ({escape(str(download.path))})", highlight=False, soft_wrap=True)
