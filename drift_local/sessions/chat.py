"""A multi-turn chat with Drift: history, plain/Drift comparison, and teaching the profile.

Every turn is logged in the store, so `--continue` resumes a conversation, and a `/prefer`
after `/compare` becomes a preference pair of the profile: the chat itself teaches it. The
pair is stored at once; scoring it and refitting run in the background while the chat goes
on, and the next answer after the refit is ready uses the new weights. A refit the chat's
end cuts short is done the next time the profile is used (its fit is stale).
"""

from __future__ import annotations

from collections import deque
from concurrent import futures
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Iterator

from drift_local.config import Settings, parse_setting
from drift_local.drift.sampling import Sampler
from drift_local.drift.steering import Decoding
from drift_local.engine.template import Message
from drift_local.errors import DriftError
from drift_local.store.store import Pair, Profile, Store
from drift_local.sessions.background import Worker
from drift_local.sessions.decoder import Answer, DriftDecoder, Step, Steering
from drift_local.sessions.fit import ProgressStarter, settings_steering
from drift_local.sessions.runtime import Models, open_models


REPLACES_PREVIOUS = "replaces_previous"  # a logged answer that takes the place of the one before
CHAT_SETTINGS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "no_repeat_ngram", "dry_multiplier", "seed", "max_tokens")  # what /set changes


@dataclass
class Resumed:
    """A logged conversation as it stood: its messages, system prompt and last β."""

    history: list[Message]
    system: str | None = None
    beta: float | None = None


def history_from_log(messages) -> list[Message]:
    """The conversation as it stood, from logged messages (for --continue)."""
    return resumed_from_log(messages).history


def resumed_from_log(messages) -> Resumed:
    """The conversation, its latest /system and β, from logged messages. A question whose
    answer was interrupted before its first token is left out: it was never answered."""
    resumed = Resumed([])
    for logged in messages:
        if logged.role == "system":
            resumed.system = logged.content or None
            continue
        if logged.role not in ("user", "assistant"):
            continue
        if logged.role == "assistant" and "beta" in logged.meta:
            resumed.beta = logged.meta["beta"]
        history = resumed.history
        if logged.meta.get(REPLACES_PREVIOUS) and history and history[-1].role == "assistant":
            history[-1] = Message("assistant", logged.content)
        elif logged.role == "user" and history and history[-1].role == "user":
            history[-1] = Message("user", logged.content)
        else:
            history.append(Message(logged.role, logged.content))
    if resumed.history and resumed.history[-1].role == "user":
        resumed.history.pop()
    return resumed


@dataclass
class Comparison:
    prompt: str
    plain: str
    drift: str


@dataclass
class Preferred:
    """A /prefer stored: the pair's id and how many pairs the profile holds now."""

    pair_id: int
    n_pairs: int


@dataclass
class Refit:
    """A background refit: how far its scoring is, and what came of it."""

    future: Future
    total: int = 0  # tokens to score (0 until scoring starts, or when all were cached)
    done: int = 0
    steering: Steering | None = None
    notice: str | None = None  # what the user should know about the fit (pairs left out)
    error: BaseException | None = None


@dataclass
class ChatState:
    settings: Settings
    greedy: bool = False
    drift_on: bool = True
    history: list[Message] = field(default_factory=list)
    last_comparison: Comparison | None = None


class ChatSession:
    def __init__(
        self,
        store: Store,
        decoder: DriftDecoder,
        settings: Settings,
        *,
        profile: Profile | None,
        steering: Steering | None,
        conversation_id: int,
        history: list[Message] | None = None,
        greedy: bool = False,
    ):
        self.store = store
        self.decoder = decoder
        self.profile = profile
        self.steering = steering
        self.conversation_id = conversation_id
        self.state = ChatState(settings=settings, greedy=greedy, history=list(history or []))
        self.sampler = Sampler(settings.sampler(greedy))
        self._refits: deque[Refit] = deque()  # queued in order; the oldest may be running
        self._worker: Worker | None = None  # started by the first /prefer

    @property
    def settings(self) -> Settings:
        return self.state.settings

    @property
    def decoding(self) -> Decoding:
        return self.settings.decoding()

    def set(self, key: str, value: str) -> Settings:
        """Change β or a sampling control for the rest of the chat (validated like config set)."""
        if key not in (*CHAT_SETTINGS, "beta"):
            raise DriftError(f"/set cannot change '{key}'", f"one of: {', '.join(CHAT_SETTINGS)} (and /beta)")
        self.state.settings = parse_setting(self.settings, key, value)
        if key != "beta" and key != "max_tokens":
            self.sampler = Sampler(self.settings.sampler(self.state.greedy))
        return self.settings

    @property
    def system(self) -> str | None:
        return self.decoder.llm_system

    def set_system(self, text: str | None) -> None:
        """The LLM's own system prompt from now on (the sLM's attribute prompts are unchanged)."""
        self.decoder.llm_system = text or None
        self._log("system", text or "")

    # --- turns ---------------------------------------------------------------------------
    def ask(self, text: str, answer: Answer) -> Iterator[Step]:
        """Stream the answer to a new user message; both are logged once the answer ends."""
        self.state.history.append(Message("user", text))
        self._log("user", text)
        try:
            yield from self._stream(self.state.history, self._active_steering(), answer)
        except (KeyboardInterrupt, GeneratorExit):
            answer.stop = "interrupted"
            raise
        finally:  # a Ctrl-C keeps the partial answer, as the user saw it; before any token, no turn
            if answer.stop == "interrupted" and not answer.text:
                self.state.history.pop()
            else:
                self.state.history.append(Message("assistant", answer.text))
                self._log("assistant", answer.text, {"drift": self._active_steering() is not None, "beta": self.settings.beta, "stop": answer.stop})

    def compare(self, plain: Answer, drift: Answer) -> tuple[Iterator[Step], Iterator[Step]]:
        """Plain and Drift answers to the last user message (consume one stream, then the other,
        then call remember_comparison)."""
        if not self.state.history or self.state.history[-1].role != "assistant":
            raise DriftError("nothing to compare yet", "send a message first")
        if self.steering is None:
            raise DriftError("this chat has no profile weights to compare against", "start it with --profile NAME (with some pairs)")
        context = self.state.history[:-1]
        return self._stream(context, None, plain), self._stream(context, self.steering, drift)

    def remember_comparison(self, plain: Answer, drift: Answer) -> None:
        self.state.last_comparison = Comparison(self.state.history[-2].content, plain.text, drift.text)

    def prefer(self, choice: int) -> Preferred:
        """Store the last comparison as a preference pair, durably, and refit in the background;
        the chosen answer continues the chat."""
        comparison = self.state.last_comparison
        if comparison is None:
            raise DriftError("/prefer follows a /compare", "use /compare first")
        if self.profile is None:
            raise DriftError("this chat has no profile to teach", "start it with --profile NAME")
        if choice not in (1, 2):
            raise DriftError("choose 1 (plain) or 2 (Drift)")
        chosen, rejected = (comparison.plain, comparison.drift) if choice == 1 else (comparison.drift, comparison.plain)
        with self.store.transaction():  # the pair and the log's choice together, or neither
            [pair_id] = self.store.add_pairs(self.profile, [Pair(comparison.prompt, chosen, rejected, source="chat /prefer")])
            self._log("assistant", chosen, {"preferred": choice, REPLACES_PREVIOUS: True})
        self.state.history[-1] = Message("assistant", chosen)
        self.state.last_comparison = None
        self._refit_soon()
        return Preferred(pair_id, self.store.count_pairs(self.profile))

    def clear(self) -> None:
        self.state.history.clear()
        self.state.last_comparison = None
        self.conversation_id = self.store.start_conversation(self.profile, {"cleared_from": self.conversation_id})

    # --- background refits ---------------------------------------------------------------
    def refitting(self) -> Refit | None:
        """The refit under way or waiting, if any (its `done` and `total` show progress)."""
        return next((refit for refit in self._refits if not refit.future.done()), None)

    def refit_ready(self) -> bool:
        """Whether every queued refit finished, and finished_refit() has news."""
        return bool(self._refits) and self.refitting() is None

    def finished_refit(self, timeout: float | None = 0) -> Refit | None:
        """The latest refit that finished since the last call, its steering now the chat's (from
        the next answer); None while none has. `timeout`: seconds to wait for the queued ones (None: no limit)."""
        if timeout != 0 and self._refits:
            futures.wait([self._refits[-1].future], timeout)
        finished = None
        while self._refits and self._refits[0].future.done():
            finished = self._refits.popleft()
            try:
                finished.steering, finished.notice = finished.future.result()
                self.steering = finished.steering
            except Exception as exc:  # the old weights stay; the fit stays stale and is redone next time
                finished.error = exc
        return finished

    def _refit_soon(self) -> None:
        """Score the new pair and refit on the worker, with this moment's settings."""
        if self._worker is None:
            self._worker = Worker("chat-refit", Store.open, lambda store: store.close())
        settings, slm, name = self.settings, self.decoder.models.slm, self.profile.name
        refit = Refit(Future())

        def progress(total: int):
            refit.total = total

            def advance(n: int) -> None:
                self._worker.check()  # the chat is ending: stop after this scoring wave
                refit.done += n

            return advance

        refit.future = self._worker.submit(lambda store: settings_steering(store, store.get_profile(name), slm, settings, progress))
        self._refits.append(refit)

    def close(self, timeout: float = 2.0) -> bool:
        """End the chat: stop a refit under way (what it scored is kept), close the store.
        False when the refit had to be abandoned inside a llama.cpp call (the process should
        then exit without waiting for it)."""
        stopped = self._worker.close(timeout) if self._worker is not None else True
        self.store.close()
        return stopped

    # --- context management --------------------------------------------------------------
    def fit_history(self, reserve: int) -> int:
        """Drop the oldest turns until the prompt plus `reserve` new tokens fits; returns turns dropped."""
        dropped = 0
        while True:
            longest = max(len(t) for t in self.decoder.prompts(self.state.history, self._active_steering()).values())
            if longest + reserve <= self.decoder.n_ctx:
                return dropped
            if len(self.state.history) <= 1:
                raise DriftError(
                    f"the message is too long for the context ({longest} tokens, {self.decoder.n_ctx} available)",
                    "shorten it or raise --n-ctx",
                )
            del self.state.history[:2]  # one user message and its answer
            dropped += 1

    # --- internals -----------------------------------------------------------------------
    def _active_steering(self) -> Steering | None:
        return self.steering if self.state.drift_on else None

    def _stream(self, conversation: list[Message], steering: Steering | None, answer: Answer) -> Iterator[Step]:
        return self.decoder.stream(
            conversation, steering, decoding=self.decoding, sampler=self.sampler, max_tokens=self.settings.max_tokens, answer=answer
        )

    def _log(self, role: str, content: str, meta: dict | None = None) -> None:
        self.store.add_message(self.conversation_id, role, content, meta)


def open_chat(
    settings: Settings,
    *,
    llm: str | None = None,
    slm: str | None = None,
    profile: str | None = None,
    system: str | None = None,
    resume: int | None = None,
    continue_last: bool = False,
    keep_beta: bool = True,
    greedy: bool = False,
    progress: ProgressStarter | None = None,
) -> tuple[ChatSession, Models, list[str]]:
    """Open the models and the store, steer by the profile (refitting if its pairs changed),
    and start a conversation, or resume one: `resume` by id, `continue_last` the profile's
    latest. A resumed chat keeps its system prompt and, unless `keep_beta` is False (a --beta
    was given), its β. Returns the session, the models and notices for the user."""
    notices: list[str] = []
    store = Store.open()
    try:
        logged = None
        if resume is not None:
            summary = store.conversation(resume)
            if profile and summary.profile != profile:
                raise DriftError(
                    f"conversation #{resume} belongs to {f'profile {summary.profile!r}' if summary.profile else 'no profile'}, not {profile!r}",
                    f"drop --profile, or use --profile {summary.profile}" if summary.profile else "drop --profile",
                )
            profile = summary.profile
            logged = (resume, store.conversation_messages(resume))
        target = store.get_profile(profile) if profile else None
        if continue_last:
            logged = store.last_conversation(target)
            if logged is None:
                notices.append("no earlier conversation to continue; starting a new one")
        models = open_models(settings, llm, slm)
        steering = None
        if target is not None:
            steering, notice = settings_steering(store, target, models.slm, settings, progress)
            notices += [notice] if notice else []
        state = resumed_from_log(logged[1]) if logged else Resumed([])
        if state.beta is not None and keep_beta:
            settings = settings.updated(beta=state.beta)
        decoder = DriftDecoder(models, settings.attributes, settings.context(), llm_system=state.system)
        if logged:
            conversation_id = logged[0]
        else:
            conversation_id = store.start_conversation(target, {"command": "chat", "llm": str(models.llm.path), "slm": str(models.slm.path)})
        session = ChatSession(
            store, decoder, settings, profile=target, steering=steering, conversation_id=conversation_id,
            history=state.history, greedy=greedy,
        )
        if system is not None and system != state.system:
            session.set_system(system)
        return session, models, notices
    except BaseException:
        store.close()
        raise
