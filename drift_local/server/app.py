"""The OpenAI-compatible routes of `drift-local serve`: parse, call the serve session, render.

Request and response shapes follow the OpenAI API closely enough that its official client
works unchanged; errors are OpenAI error objects. Everything model- or store-related
happens in `drift_local.sessions.serve`.
"""

from __future__ import annotations

import asyncio
import errno
import signal
import json
import secrets
import socket
from typing import Literal

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from drift_local.engine.template import Message
from drift_local.errors import DriftError
from drift_local.sessions.serve import PROFILE_PREFIX, ChatParams, ChatStream, NotFound, PreferenceParams, RequestError, ServeSession

MAX_BODY_BYTES = 4 << 20
DISCONNECT_POLL_S = 0.25  # how often a non-streaming request checks that its client is still there
SHUTDOWN_GRACE_S = 4.0  # for streams to end after Ctrl-C or SIGTERM (uvicorn then waits 6 s in all)
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


# --- request bodies -------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send fields we do not use (user, presence_penalty, ...)


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def message(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or ())
        return Message("system" if self.role == "developer" else self.role, text)


class DriftOptions(_Body):
    beta: float | None = Field(None, gt=0, description="steering strength for this request; 'inf' decodes plainly")
    attributes: int | None = Field(None, ge=0, le=64)


class StreamOptions(_Body):
    include_usage: bool = False


class ChatCompletionBody(_Body):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = Field(None, max_length=4)
    n: int = 1
    drift: DriftOptions | None = None

    def params(self) -> ChatParams:
        if self.n != 1:
            raise RequestError("only n=1 is supported", "n", "unsupported_value", "send one request per answer")
        stop = [self.stop] if isinstance(self.stop, str) else self.stop or []
        return ChatParams(
            model=self.model,
            messages=tuple(m.message() for m in self.messages),
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=tuple(s for s in stop if s),
            beta=self.drift.beta if self.drift else None,
            attributes=self.drift.attributes if self.drift else None,
        )


class PreferenceBody(_Body):
    profile: str | None = Field(None, description="the profile to teach; or give model 'drift:NAME'")
    model: str | None = None
    prompt: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    chosen_id: str | None = Field(None, description="the id of a served answer that was preferred")
    rejected_id: str | None = Field(None, description="the id of a served answer that was not")
    wait: bool = Field(False, description="reply once the profile is refit")

    def params(self) -> PreferenceParams:
        profile = self.profile
        if profile is None and self.model and self.model.startswith(PROFILE_PREFIX):
            profile = self.model[len(PROFILE_PREFIX):]
        if not profile:
            raise RequestError("name the profile: 'profile': NAME (or 'model': 'drift:NAME')", "profile")
        return PreferenceParams(profile, self.prompt, self.chosen, self.rejected, self.chosen_id, self.rejected_id, self.wait)


# --- errors ---------------------------------------------------------------------------------
def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "drift-local"}


def _error(status: int, message: str, **fields) -> JSONResponse:
    return JSONResponse(error_body(message, **fields), status_code=status)


def _drift_error(exc: DriftError) -> dict:
    message = str(exc)  # the message with its hint
    if isinstance(exc, RequestError):
        return error_body(message, param=exc.param, code=exc.code)
    return error_body(message)


class Gate:
    """Before any route: the Bearer key, a JSON body for POSTs, and the body size limit.

    The body is read here (up to the limit) and handed on, so an over-large one is refused
    without being parsed. Requiring JSON keeps a web page's plain form posts out.
    """

    def __init__(self, app, api_key: str | None, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.api_key = api_key
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is None and scope["method"] == "POST":
            body, refusal = await self._read_body(receive)
            if refusal is None:
                receive = _replay(body, receive)
        if refusal is not None:
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)

    def _refusal(self, scope, headers: dict[str, str]) -> JSONResponse | None:
        if self.api_key is not None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.api_key.encode()):
                response = _error(401, "a valid API key is required: send 'Authorization: Bearer KEY'", code="invalid_api_key")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        if scope["method"] == "POST":
            if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return _error(415, "send the body as JSON, with 'Content-Type: application/json'", code="unsupported_media_type")
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body:
                return self._too_large()
        return None

    async def _read_body(self, receive) -> tuple[bytes, JSONResponse | None]:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return bytes(body), None  # the client left; the route finds out
            body += message.get("body", b"")
            if len(body) > self.max_body:
                return b"", self._too_large()
            if not message.get("more_body", False):
                return bytes(body), None

    def _too_large(self) -> JSONResponse:
        return _error(413, f"the request body is over {self.max_body >> 20} MiB", code="request_too_large")


def _replay(body: bytes, receive):
    """A receive that hands over the body once, then listens on (for the client leaving)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


# --- the application ------------------------------------------------------------------------
def create_app(session: ServeSession, *, api_key: str | None = None, loopback: bool = True) -> FastAPI:
    app = FastAPI(title="drift-local", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(Gate, api_key=api_key)
    if loopback:  # a page on another site cannot reach a loopback server through DNS rebinding
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', 'parse error')}", code="invalid_json")
        param = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
        return _error(400, f"{param or 'body'}: {first.get('msg', 'invalid')}", param=param, code="invalid_value")

    @app.exception_handler(NotFound)
    async def not_found(_request, exc: NotFound):
        return JSONResponse(_drift_error(exc), status_code=404)

    @app.exception_handler(DriftError)
    async def refused(_request, exc: DriftError):
        return JSONResponse(_drift_error(exc), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None)

    @app.exception_handler(Exception)
    async def failed(_request, exc: Exception):
        return _error(500, f"internal error: {exc}", kind="server_error")

    @app.get("/health")
    async def health():
        return session.health()

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model(name) for name in await session.model_ids()]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str):
        return _model(await session.model_id(model_id))

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionBody, request: Request):
        stream = await session.chat(body.params())
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            shutdown = anyio.Event()  # set when the server stops: the answer ends, the stream closes cleanly
            return EventSourceResponse(_chunks(stream, usage, shutdown), sep="\n", shutdown_event=shutdown, shutdown_grace_period=SHUTDOWN_GRACE_S)
        text = await _unless_disconnected(request, stream)
        if text is None:
            return _error(499, "the client closed the request", code="client_closed")
        return {
            "id": stream.id,
            "object": "chat.completion",
            "created": stream.created,
            "model": stream.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": stream.finish_reason}],
            "usage": _usage(stream),
        }

    @app.post("/v1/preferences")
    async def preferences(body: PreferenceBody):
        result = await session.add_preference(body.params())
        return {
            "object": "preference",
            "id": result.pair_id,
            "profile": result.profile,
            "pairs": result.n_pairs,
            "fit": "updated" if result.fit_updated else "refitting",  # requests made after this reply wait for the refit
        }

    return app


def _usage(stream: ChatStream) -> dict:
    return {"prompt_tokens": stream.prompt_tokens, "completion_tokens": stream.completion_tokens, "total_tokens": stream.prompt_tokens + stream.completion_tokens}


async def _chunks(stream: ChatStream, include_usage: bool, shutdown: anyio.Event):
    """SSE events: a role delta, content deltas, the finish, (usage), then [DONE]."""

    async def end_on_shutdown() -> None:
        await shutdown.wait()
        stream.cancel()

    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        choices = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if delta is not None else []
        return json.dumps({"id": stream.id, "object": "chat.completion.chunk", "created": stream.created, "model": stream.model, "choices": choices, **extra}, ensure_ascii=False)

    yield chunk({"role": "assistant", "content": ""})
    watcher = asyncio.ensure_future(end_on_shutdown())
    try:
        async for piece in stream.pieces():
            yield chunk({"content": piece})
    except DriftError as exc:  # headers are sent: the error travels as an event
        yield json.dumps(_drift_error(exc), ensure_ascii=False)
    else:
        yield chunk({}, stream.finish_reason)
        if include_usage:
            yield chunk(None, usage=_usage(stream))
    finally:
        watcher.cancel()
    yield "[DONE]"


async def _unless_disconnected(request: Request, stream: ChatStream) -> str | None:
    """The whole answer, or None when the client left first (which cancels it: its sequences are freed)."""
    task = asyncio.ensure_future(stream.text())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                return None
    finally:
        task.cancel()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the models are announced (port 0: any free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # clients that connect once the address is shown wait in the backlog, not refused
    except OSError as exc:
        hint = f"pick another with --port, or stop what is using {port}" if getattr(exc, "errno", None) == errno.EADDRINUSE else "check --host"
        raise DriftError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint) from None
    return sock


class _Stopped(Exception):
    pass


def _stopped(signum, frame) -> None:
    raise _Stopped


def serve_forever(app: FastAPI, sock: socket.socket) -> None:
    """Run until Ctrl-C or SIGTERM: uvicorn stops taking requests and lets streams end, then returns.

    uvicorn re-raises the signal that stopped it once it is done; handled here, it returns
    instead of killing the process (SIGTERM) before the caller's clean-up.
    """
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=6, lifespan="off")
    previous = {signum: signal.signal(signum, _stopped) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except _Stopped:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
