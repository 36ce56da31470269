"""A multi-turn chat with Drift: history, plain/Drift comparison, and teaching the profile.

Every turn is logged in the store, so `--continue` resumes a conversation, and a `/prefer`
after `/compare` becomes a preference pair of the profile: the chat itself teaches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from drift_local.drift.sampling import Sampler
from drift_local.drift.steering import Decoding
from drift_local.engine.chat import Message
from drift_local.errors import DriftError
from drift_local.profiles.store import PairIn, Profile, Store
from drift_local.sessions.decoder import Answer, DriftDecoder, Step, Steering


REPLACES_PREVIOUS = "replaces_previous"  # a logged answer that takes the place of the one before


def history_from_log(messages) -> list[Message]:
    """The conversation as it stood, from logged messages (for --continue)."""
    history: list[Message] = []
    for logged in messages:
        if logged.role not in ("user", "assistant"):
            continue
        if logged.meta.get(REPLACES_PREVIOUS) and history and history[-1].role == "assistant":
            history[-1] = Message("assistant", logged.content)
        else:
            history.append(Message(logged.role, logged.content))
    return history


@dataclass
class Comparison:
    prompt: str
    plain: str
    drift: str


@dataclass
class ChatState:
    decoding: Decoding
    drift_on: bool = True
    history: list[Message] = field(default_factory=list)
    last_comparison: Comparison | None = None


class ChatSession:
    def __init__(
        self,
        store: Store,
        decoder: DriftDecoder,
        sampler: Sampler,
        *,
        profile: Profile | None,
        steering: Steering | None,
        decoding: Decoding,
        max_tokens: int,
        conversation_id: int,
        history: list[Message] | None = None,
    ):
        self.store = store
        self.decoder = decoder
        self.sampler = sampler
        self.profile = profile
        self.steering = steering
        self.max_tokens = max_tokens
        self.conversation_id = conversation_id
        self.state = ChatState(decoding=decoding, history=list(history or []))

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
        finally:  # a Ctrl-C keeps the partial answer, as the user saw it
            self.state.history.append(Message("assistant", answer.text))
            self._log("assistant", answer.text, {"drift": self._active_steering() is not None, "beta": self.state.decoding.beta, "stop": answer.stop})

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

    def prefer(self, choice: int) -> Comparison:
        """Store the last comparison as a preference pair; the chosen answer continues the chat."""
        comparison = self.state.last_comparison
        if comparison is None:
            raise DriftError("/prefer follows a /compare", "use /compare first")
        if self.profile is None:
            raise DriftError("this chat has no profile to teach", "start it with --profile NAME")
        if choice not in (1, 2):
            raise DriftError("choose 1 (plain) or 2 (Drift)")
        chosen, rejected = (comparison.plain, comparison.drift) if choice == 1 else (comparison.drift, comparison.plain)
        self.store.add_pairs(self.profile, [PairIn(comparison.prompt, chosen, rejected, source="chat /prefer")])
        self.state.history[-1] = Message("assistant", chosen)
        self._log("assistant", chosen, {"preferred": choice, REPLACES_PREVIOUS: True})
        self.state.last_comparison = None
        return comparison

    def clear(self) -> None:
        self.state.history.clear()
        self.state.last_comparison = None
        self.conversation_id = self.store.start_conversation(self.profile, {"cleared_from": self.conversation_id})

    def set_steering(self, steering: Steering | None) -> None:
        self.steering = steering

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
            conversation, steering, decoding=self.state.decoding, sampler=self.sampler, max_tokens=self.max_tokens, answer=answer
        )

    def _log(self, role: str, content: str, meta: dict | None = None) -> None:
        self.store.add_message(self.conversation_id, role, content, meta)
