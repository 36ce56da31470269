"""`serve`: many people's requests at once, each steered by its own profile, decoded together.

Three threads own everything native or durable, so the event loop only waits on queues:

- the decode worker owns the contexts (a `BatchDecoder`). Between steps it takes new
  requests and cancellations from its inbox, admits what fits (the rest waits, in order),
  and advances every answer in progress with one `llama_decode`;
- the store worker reads profiles' fits, logs every served answer as a chat turn and stores
  preference pairs, each in milliseconds;
- the fit worker refits a profile whose pairs changed (scoring new pairs with the sLM can
  take seconds), with its own connection, so only that profile's requests wait for it.

A preference's pair is stored before the reply, and a chat request for a profile whose fit
is older than its pairs waits for the refit, so every request sent after the reply is
steered by weights that include the pair. Each answer reaches the asyncio side as a stream
of events.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from drift_local.config import Settings
from drift_local.drift.sampling import Sampler
from drift_local.engine.template import Message
from drift_local.engine.context import PromptTooLong
from drift_local.errors import DriftError
from drift_local.store.store import Pair, Profile, Store
from drift_local.sessions.decoder import Answer, BatchDecoder, Request, Steering
from drift_local.sessions.fit import ProgressStarter, is_stale, profile_steering, steering_from_fit
from drift_local.sessions.runtime import Models

PROFILE_PREFIX = "drift:"  # the model name that selects a profile: drift:NAME
ANSWER_PREFIX = "chatcmpl-"
CELLS_PER_SEQUENCE = 1024  # KV cells of each sequence's stream (prompt plus answer), at most --n-ctx
STALE = object()  # a profile whose pairs changed since its last fit
FINISH = {"eos": "stop", "length": "length", "context": "length", "interrupted": None}  # OpenAI finish_reason


class RequestError(DriftError):
    """A request the server refuses; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.param = param
        self.code = code


class NotFound(RequestError):
    pass


@dataclass(frozen=True)
class ChatParams:
    """One chat completion request, parsed."""

    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    beta: float | None = None  # overrides the server's β for this request
    attributes: int | None = None  # overrides the server's k


@dataclass(frozen=True)
class PreferenceParams:
    """A preference pair for a profile: each answer as text or as the id of a served answer."""

    profile: str
    prompt: str | None = None
    chosen: str | None = None
    rejected: str | None = None
    chosen_id: str | None = None
    rejected_id: str | None = None
    wait: bool = False  # reply only once the refit is done


@dataclass(frozen=True)
class PreferenceResult:
    pair_id: int
    profile: str
    n_pairs: int
    fit_updated: bool


@dataclass
class _Job:
    """An answer on its way: the decoder's request plus what the server adds around it."""

    request: Request
    model: str
    conversation_id: int
    stops: tuple[str, ...]
    send: Callable[[tuple], None]
    explicit_max_tokens: bool
    sent: int = 0  # characters of the answer passed on so far
    stopped: bool = False  # a stop string ended it
    started: float = field(default_factory=time.perf_counter)

    def text(self) -> str:
        """The answer as the client sees it: cut before the first stop string."""
        text = self.request.answer.text
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        return text[: min(cuts)] if cuts else text

    def flush(self, final: bool) -> None:
        """Pass on new text, holding back what could still begin a stop string."""
        text = self.text()
        self.stopped = len(text) < len(self.request.answer.text)
        end = len(text) if final or self.stopped else len(text) - _held_back(text, self.stops)
        if end > self.sent:
            self.send(("text", text[self.sent : end]))
            self.sent = end


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of `text` are the start of some stop string."""
    return max((n for s in stops for n in range(min(len(s) - 1, len(text)), 0, -1) if s.startswith(text[-n:])), default=0)


class ChatStream:
    """One answer as the route sees it: text pieces as they come, then the finish."""

    def __init__(self, session: ServeSession, job_id: str, model: str, events: asyncio.Queue):
        self.id = job_id
        self.model = model
        self.created = int(time.time())
        self.finish_reason: str | None = None
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._session = session
        self._events = events
        self._job: _Job | None = None
        self._done = False

    async def pieces(self) -> AsyncIterator[str]:
        """The answer's text as it is written. Leaving early (a client gone) cancels it."""
        try:
            while True:
                event = await self._events.get()
                if event[0] == "text":
                    yield event[1]
                elif event[0] == "done":
                    _, self.finish_reason, self.prompt_tokens, self.completion_tokens = event
                    self._done = True
                    return
                else:
                    raise event[1]
        finally:
            self.cancel()

    async def text(self) -> str:
        return "".join([piece async for piece in self.pieces()])

    def cancel(self) -> None:
        if not self._done and self._job is not None:
            self._done = True
            self._session._inbox.put(("cancel", self._job))


class ServeSession:
    """The models, the store and the three workers behind `drift-local serve`."""

    def __init__(
        self,
        models: Models,
        settings: Settings,
        *,
        llm_name: str,
        profiles: Sequence[str] | None,
        store_path: Path,
        parallel: int = 4,
        greedy: bool = False,
        report: Callable[[str], None] | None = None,
    ):
        self.models = models
        self.settings = settings
        self.llm_name = llm_name
        self.profiles = tuple(profiles) if profiles else None  # None: every profile in the store
        self.store_path = Path(store_path)
        self.parallel = parallel
        self.greedy = greedy  # the default; a request's temperature still applies when greedy is off
        self.report = report or (lambda line: None)
        self._inbox: queue.Queue = queue.Queue()
        self._store_pool: ThreadPoolExecutor | None = None
        self._fit_pool: ThreadPoolExecutor | None = None
        self._refits: dict[str, asyncio.Future] = {}  # the latest refit of each profile
        self._store_local = threading.local()
        self._worker: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self.n_ctx = 0
        self.active = 0
        self.waiting = 0

    # --- life cycle ----------------------------------------------------------------------
    def start(self, progress: ProgressStarter | None = None) -> None:
        """Open the store, bring the served profiles' fits up to date, start decoding."""
        self._store_pool = ThreadPoolExecutor(1, thread_name_prefix="serve-store", initializer=self._open_store)
        self._fit_pool = ThreadPoolExecutor(1, thread_name_prefix="serve-fit", initializer=self._open_store)
        names = self.profiles or self._store_pool.submit(lambda: [p.name for p in self._store.list_profiles()]).result()
        for name in names:
            try:
                self._fit_pool.submit(self._refit, name, progress).result()
            except DriftError as exc:
                if self.profiles is not None:  # named on the command line: it must work
                    raise
                self.report(f"note: drift:{name} cannot be used: {exc.message}")
        self._worker = threading.Thread(target=self._decode_loop, name="serve-decode", daemon=True)
        self._worker.start()
        self._ready.wait()
        if self._failed is not None:
            raise self._failed

    def close(self) -> None:
        """Stop every answer (each is logged as far as it got), then the workers."""
        if self._worker is not None:
            self._inbox.put(("stop",))
            self._worker.join()
            self._worker = None
        for pool in (self._fit_pool, self._store_pool):  # a refit under way finishes; the logs are flushed
            if pool is not None:
                pool.submit(lambda: self._store_local.store.close())
                pool.shutdown(wait=True)
        self._fit_pool = self._store_pool = None

    # --- what the routes call -----------------------------------------------------------
    async def model_ids(self) -> list[str]:
        """The plain LLM, then one `drift:NAME` per served profile."""
        names = self.profiles if self.profiles is not None else await self._in_store(lambda: [p.name for p in self._store.list_profiles()])
        return [self.llm_name, *(PROFILE_PREFIX + name for name in names)]

    async def model_id(self, name: str) -> str:
        """`name` if it is served (the plain LLM or a served profile), else NotFound."""
        if name not in await self.model_ids():
            raise NotFound(f"the model '{name}' does not exist", "model", "model_not_found", "GET /v1/models lists what is served")
        return name

    async def chat(self, params: ChatParams) -> ChatStream:
        """Queue an answer; returns once the decoder accepted it (bad requests raise here)."""
        profile = self._profile_name(params.model)
        k = self.settings.attributes if params.attributes is None else params.attributes
        steering = await self._steering(profile, k) if profile is not None else None
        conversation_id, beta = await self._in_store(self._prepare, params, profile, steering)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()

        def send(event: tuple) -> None:
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is gone (shutting down): nobody is listening
                pass

        defaults = self.settings.sampler(self.greedy)  # the stored sampling defaults; the request's own values win
        sampler = Sampler(replace(
            defaults,
            temperature=defaults.temperature if params.temperature is None else params.temperature,
            top_p=defaults.top_p if params.top_p is None else params.top_p,
            seed=defaults.seed if params.seed is None else params.seed,
        ))
        decoding = replace(self.settings.decoding(), beta=beta)
        request = Request(list(params.messages), steering, decoding, sampler, params.max_tokens or self.settings.max_tokens)
        job = _Job(request, params.model, conversation_id, params.stop, send, params.max_tokens is not None)
        stream = ChatStream(self, f"{ANSWER_PREFIX}{conversation_id}", params.model, events)
        stream._job = job
        self._inbox.put(("submit", job))
        try:
            first = await events.get()
        except BaseException:  # the client left while the answer was being accepted
            stream.cancel()
            raise
        if first[0] == "error":
            raise first[1]
        return stream

    async def add_preference(self, params: PreferenceParams) -> PreferenceResult:
        """Store the pair durably, then refit on the fit worker (awaited with `wait`)."""
        self._check_served(params.profile)
        pair_id, n_pairs = await self._in_store(self._add_pair, params)
        refit = self._refit_soon(params.profile, after_now=True)
        if params.wait:
            await refit
        return PreferenceResult(pair_id, params.profile, n_pairs, fit_updated=params.wait)

    def health(self) -> dict:
        return {"status": "ok", "active": self.active, "waiting": self.waiting, "parallel": self.parallel}

    # --- the store worker ----------------------------------------------------------------
    def _open_store(self) -> None:
        self._store_local.store = Store.open(self.store_path)

    @property
    def _store(self) -> Store:
        return self._store_local.store

    async def _in_store(self, fn, *args):
        return await asyncio.wrap_future(self._store_pool.submit(fn, *args))

    def _profile_name(self, model: str) -> str | None:
        if model == self.llm_name:
            return None
        if not model.startswith(PROFILE_PREFIX):
            raise NotFound(f"the model '{model}' does not exist", "model", "model_not_found", "GET /v1/models lists what is served")
        name = model[len(PROFILE_PREFIX):]
        self._check_served(name)
        return name

    def _check_served(self, name: str) -> None:
        if self.profiles is not None and name not in self.profiles:
            raise NotFound(f"the profile '{name}' is not served here", "model", "model_not_found", "GET /v1/models lists what is served")

    def _get_profile(self, name: str) -> Profile:
        try:
            return self._store.get_profile(name)
        except DriftError as exc:
            raise NotFound(exc.message, "model", "model_not_found", exc.hint) from None

    async def _steering(self, name: str, k: int) -> Steering | None:
        """The profile's steering from a fit that includes all its pairs (waiting for a refit if needed)."""
        for _ in range(3):
            steering = await self._in_store(self._fitted_steering, name, k)
            if steering is not STALE:
                return steering
            await self._refit_soon(name)
        raise DriftError(f"the pairs of profile '{name}' keep changing while it is refit", "try again")

    def _refit_soon(self, name: str, after_now: bool = False) -> asyncio.Future:
        """The profile's refit on the fit worker: the one under way, or (after_now) a new one after it."""
        pending = self._refits.get(name)
        if after_now or pending is None or pending.done():
            pending = self._refits[name] = asyncio.wrap_future(self._fit_pool.submit(self._refit, name))
            pending.add_done_callback(lambda f: f.cancelled() or f.exception())  # failures reach the requests that wait
        return pending

    def _fitted_steering(self, name: str, k: int):
        """The top-k steering of the profile's latest fit; None with no pairs; STALE when pairs changed since."""
        store, s = self._store, self.settings
        profile = self._get_profile(name)
        n_pairs = store.count_pairs(profile, include_ties=False)  # fits leave ties out
        if n_pairs == 0:
            return None
        record = store.latest_fit(profile, self.models.slm.fingerprint)
        if is_stale(record, n_pairs, s.method, s.reward, store.active_attributes(profile).names):
            return STALE
        return steering_from_fit(record, store, profile, k, s.weight_scale)

    def _refit(self, name: str, progress: ProgressStarter | None = None) -> None:
        """On the fit worker: score what is new and fit, if the pairs changed."""
        s = self.settings
        profile_steering(
            self._store, self._get_profile(name), self.models.slm, s.context(), s.attributes,
            method=s.method, reward=s.reward, max_response_tokens=s.max_response_tokens, progress=progress,
        )

    def _prepare(self, params: ChatParams, profile_name: str | None, steering: Steering | None) -> tuple[int, float]:
        """β for the request, and its conversation logged (the answer joins it later)."""
        profile = self._get_profile(profile_name) if profile_name is not None else None
        beta = self.settings.beta if params.beta is None else params.beta
        if steering is None:
            beta = math.inf
        conversation_id = self._store.start_conversation(profile, {"via": "serve", "model": params.model, "llm": str(self.models.llm.path), "slm": str(self.models.slm.path)})
        for message in params.messages:
            self._store.add_message(conversation_id, message.role, message.content)
        return conversation_id, beta

    def _log_answer(self, job: _Job, finish: str | None) -> None:
        request = job.request
        steering = request.steering if request.steered else None
        self._store.add_message(job.conversation_id, "assistant", job.text(), {
            "served": True,
            "model": job.model,
            "drift": steering is not None,
            "beta": request.decoding.beta,
            "attributes": [{"name": n, "weight": float(w)} for n, w in zip(steering.names, steering.weights)] if steering else [],
            "style": steering.style() if steering else {},
            "stop": "stop" if job.stopped else request.answer.stop,
            "finish_reason": finish,
            "tokens": len(request.answer.tokens),
            "seed": request.sampler.settings.seed,
        })

    def _served_answer(self, answer_id: str, field_name: str) -> tuple[str, str]:
        """(prompt, answer) of a served answer, by its id."""
        number = answer_id[len(ANSWER_PREFIX):] if answer_id.startswith(ANSWER_PREFIX) else ""
        messages = self._store.conversation_messages(int(number)) if number.isdigit() else []
        answers = [m for m in messages if m.role == "assistant" and m.meta.get("served")]
        prompts = [m for m in messages if m.role == "user"]
        if not answers or not prompts:
            raise NotFound(f"no finished answer with id '{answer_id}'", field_name, "answer_not_found")
        return prompts[-1].content, answers[-1].content

    def _add_pair(self, params: PreferenceParams) -> tuple[int, int]:
        profile = self._get_profile(params.profile)
        prompts = [params.prompt] if params.prompt is not None else []
        texts = {}
        for side in ("chosen", "rejected"):
            text, answer_id = getattr(params, side), getattr(params, f"{side}_id")
            if (text is None) == (answer_id is None):
                raise RequestError(f"give either '{side}' or '{side}_id'", side)
            if answer_id is not None:
                prompt, text = self._served_answer(answer_id, f"{side}_id")
                prompts.append(prompt)
            texts[side] = text
        if not prompts:
            raise RequestError("'prompt' is required when both answers are given as text", "prompt")
        if len(set(prompts)) > 1:
            raise RequestError("the two answers do not answer the same prompt", "prompt")
        try:
            [pair_id] = self._store.add_pairs(profile, [Pair(prompts[0], texts["chosen"], texts["rejected"], source="serve")])
        except DriftError as exc:
            if isinstance(exc, RequestError):
                raise
            raise RequestError(exc.message, None, None, exc.hint) from None
        return pair_id, self._store.count_pairs(profile)

    # --- the decode worker ---------------------------------------------------------------
    def _decode_loop(self) -> None:
        try:
            # Each answer holds base and k attribute sequences in the sLM's context, and one in the
            # LLM's (the same context when they are one model).
            per_answer = self.settings.attributes + 1 + (1 if self.models.shared else 0)
            n_seq = min(256, self.parallel * per_answer)
            cells = min(self.settings.n_ctx, CELLS_PER_SEQUENCE)
            batch = BatchDecoder(
                self.models, self.settings.context(), n_seq=n_seq, n_cells=n_seq * cells,
                llm_seq=self.parallel, llm_cells=self.parallel * cells,
            )
            self.n_ctx = batch.n_ctx
        except BaseException as exc:  # reported by start()
            self._failed = exc
            self._ready.set()
            return
        self._ready.set()
        waiting: deque[_Job] = deque()
        jobs: dict[int, _Job] = {}
        while True:
            try:
                idle = not waiting and not batch.active
                commands = [self._inbox.get()] if idle else []
                while True:
                    try:
                        commands.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                for command in commands:
                    if command[0] == "stop":
                        for job in [*waiting, *jobs.values()]:
                            batch.cancel(job.request)
                            job.request.answer.stop = "interrupted"
                            self._finish(job)
                        return
                    job = command[1]
                    if command[0] == "submit":
                        self._accept(batch, job, waiting)
                    elif job in waiting:
                        waiting.remove(job)
                        job.request.answer.stop = "interrupted"
                        self._finish(job)
                    elif id(job.request) in jobs:
                        batch.cancel(job.request)
                        self._finish(jobs.pop(id(job.request)))
                while waiting and batch.admit(waiting[0].request):
                    job = waiting.popleft()
                    jobs[id(job.request)] = job
                for request, step in batch.step() if batch.active else ():
                    job = jobs[id(request)]
                    job.flush(final=step is None)
                    if step is None or job.stopped:
                        batch.cancel(request)  # frees its sequences; a no-op once it ended
                        self._finish(jobs.pop(id(request)))
            except Exception as exc:  # a failed step fails the answers in it, never the server
                for job in jobs.values():
                    batch.cancel(job.request)
                    self._finish(job, exc)
                jobs.clear()
            self.active, self.waiting = len(jobs), len(waiting)

    def _accept(self, batch: BatchDecoder, job: _Job, waiting: deque[_Job]) -> None:
        """Check that the answer fits the context and the batch; then it waits for room."""
        request = job.request
        try:
            prompts = batch.roles.prompts(request.conversation, request.steering if request.steered else None)
            longest = max(len(tokens) for tokens in prompts.values())
            room = batch.n_ctx - longest
            if room <= 0:
                raise RequestError(
                    f"the prompt ({longest} tokens) does not fit the context of {batch.n_ctx} tokens",
                    "messages", "context_length_exceeded", f"shorten the conversation: an answer's sequences hold {batch.n_ctx} tokens each",
                )
            if job.explicit_max_tokens and request.max_tokens > room:
                raise RequestError(
                    f"max_tokens {request.max_tokens} plus the prompt ({longest} tokens) exceed the context of {batch.n_ctx} tokens",
                    "max_tokens", "context_length_exceeded", f"ask for at most {room}",
                )
            request.max_tokens = min(request.max_tokens, room)
            batch.check(request)
        except PromptTooLong as exc:
            job.send(("error", RequestError(exc.message, "messages", "context_length_exceeded", exc.hint)))
        except DriftError as exc:
            job.send(("error", exc if isinstance(exc, RequestError) else RequestError(exc.message, None, None, exc.hint)))
        else:
            job.send(("accepted",))
            waiting.append(job)

    def _finish(self, job: _Job, error: Exception | None = None) -> None:
        """Tell the client how it ended, and log the answer as far as it got."""
        answer: Answer = job.request.answer
        job.flush(final=True)
        finish = "stop" if job.stopped else FINISH.get(answer.stop)
        job.send(("error", error) if error is not None else ("done", finish, answer.prompt_tokens, len(answer.tokens)))
        self._store_pool.submit(self._log_answer, job, finish)
        elapsed = time.perf_counter() - job.started
        self.report(f"{job.model}: {len(answer.tokens)} tokens in {elapsed:.1f} s, {finish or 'cancelled'}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_exposure(host: str, api_key: str | None, insecure_no_auth: bool) -> str | None:
    """Refuse to listen beyond loopback without a key; returns a warning for --insecure-no-auth."""
    if is_loopback(host) or api_key:
        return None
    if insecure_no_auth:
        return f"listening on {host} with no API key: anyone who can reach this port can use the models and teach the profiles"
    raise DriftError(
        f"--host {host} is reachable from other machines and needs an API key",
        "add --api-key KEY (clients send 'Authorization: Bearer KEY'), or --insecure-no-auth to serve without one",
    )
