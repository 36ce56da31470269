"""`drift-local serve`: an OpenAI-compatible HTTP server; the model name picks the profile."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from drift_local.cli.app import app
from drift_local.cli.common import console, err_console
from drift_local.cli.settings_flags import DecodingFlags, decoding_flags
from drift_local.errors import DriftError


@app.command()
@decoding_flags
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but loopback needs --api-key (or --insecure-no-auth).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")] = 8000,
    profile: Annotated[Optional[list[str]], typer.Option("--profile", "-p", help="Serve this profile as model 'drift:NAME' (repeatable; default: every profile).")] = None,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="DRIFT_LOCAL_API_KEY", help="Require 'Authorization: Bearer KEY' on every request.")] = None,
    insecure_no_auth: Annotated[bool, typer.Option("--insecure-no-auth", help="Serve a non-loopback --host without an API key (anyone who can reach it can use it).")] = False,
    parallel: Annotated[int, typer.Option("--parallel", min=1, max=64, help="Answers decoded together; more requests wait in a queue.")] = 4,
    flags: DecodingFlags = None,
) -> None:
    """Serve the LLM and your profiles over an OpenAI-compatible API (chat completions, models, preferences).

    Point any OpenAI client at http://HOST:PORT/v1 and pick model 'drift:NAME' for a profile's
    steering, or the plain model's name. The flags below set the defaults; requests' own
    temperature, top_p, seed, max_tokens and stop win over them. POST /v1/preferences teaches a profile. Ctrl-C stops.
    """
    try:
        from drift_local.server.app import bind, create_app, serve_forever
    except ImportError as exc:
        raise DriftError(f"serving needs the web extra ({exc.name} is missing)", "pip install 'drift-local[serve]'") from None
    from drift_local.catalog.catalog import resolve_model
    from drift_local.cli.progress import token_progress
    from drift_local.config import store_path
    from drift_local.sessions.profiles import profile_names
    from drift_local.sessions.runtime import open_models
    from drift_local.sessions.serve import PROFILE_PREFIX, ServeSession, check_exposure, is_loopback

    warning = check_exposure(host, api_key, insecure_no_auth)
    settings = flags.settings()
    llm, slm = flags.llm, flags.slm
    served = profile_names(profile)  # named profiles must exist before anything loads
    llm_name = resolve_model(llm or settings.llm).name
    sock = bind(host, port)  # before the models load: a busy port fails at once
    try:
        models = open_models(settings, llm, slm)
        session = ServeSession(
            models, settings, llm_name=llm_name, profiles=profile, store_path=store_path(), parallel=parallel, greedy=flags.greedy,
            report=lambda line: err_console.print(f"[dim]{line}[/]", highlight=False),
        )
        try:
            with token_progress("fitting profiles") as progress:
                session.start(progress)
            address = sock.getsockname()
            shown = f"[{address[0]}]" if ":" in address[0] else address[0]
            url = f"http://{shown}:{address[1]}/v1"
            same = "the same file as sLM" if models.shared else f"sLM {models.slm.path.name}"
            console.print(f"[bold]drift-local serve[/] · OpenAI base URL [bold]{url}[/]" + (" · API key required" if api_key else ""), soft_wrap=True)
            console.print(f"  LLM {models.llm.path.name} ({same}) · β {settings.beta:g} · {parallel} answers at once", soft_wrap=True, highlight=False)
            console.print(f"  models: {', '.join([llm_name, *(PROFILE_PREFIX + n for n in served)])}" + ("" if profile else " (and profiles made later)"), soft_wrap=True, highlight=False)
            if warning:
                err_console.print(f"[bold yellow]warning:[/] {warning}")
            console.print("[dim]  Ctrl-C stops[/]")
            serve_forever(create_app(session, api_key=api_key, loopback=is_loopback(host)), sock)
        finally:
            session.close()
            console.print("[dim]stopped[/]")
    finally:
        sock.close()
