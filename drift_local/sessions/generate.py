"""One answer to one prompt (`drift-local generate`), logged like a chat turn."""

from __future__ import annotations

import time
from typing import Iterator

from drift_local.config import Settings
from drift_local.drift.sampling import Sampler
from drift_local.engine.template import Message
from drift_local.store.store import Store
from drift_local.sessions.decoder import Answer, DriftDecoder, Step
from drift_local.sessions.fit import ProgressStarter, settings_steering
from drift_local.sessions.runtime import open_models


class Generation:
    """Models and steering for one answer; `stream` writes it and logs prompt and answer."""

    def __init__(
        self, settings: Settings, *, llm: str | None = None, slm: str | None = None, profile: str | None = None,
        greedy: bool = False, system: str | None = None, progress: ProgressStarter | None = None,
    ):
        self.settings = settings
        self.greedy = greedy
        self.models = open_models(settings, llm, slm)
        self.notice: str | None = None
        with Store.open() as store:
            self.profile = store.get_profile(profile) if profile else None
            self.steering = None
            if self.profile is not None:
                self.steering, self.notice = settings_steering(store, self.profile, self.models.slm, settings, progress)
        self.decoder = DriftDecoder(self.models, self.steering.k if self.steering else 0, settings.context(), llm_system=system)
        self.answer = Answer()
        self.first_token_at: float | None = None  # perf_counter times: prefill ends at the first token
        self.last_token_at: float | None = None
        self.started_at: float | None = None
        self.conversation_id: int | None = None

    def stream(self, text: str, stats: bool = False) -> Iterator[Step]:
        self.started_at = time.perf_counter()
        steps = self.decoder.stream(
            [Message("user", text)], self.steering, decoding=self.settings.decoding(), sampler=Sampler(self.settings.sampler(self.greedy)),
            max_tokens=self.settings.max_tokens, stats=stats, answer=self.answer,
        )
        try:
            for step in steps:
                self.last_token_at = time.perf_counter()
                self.first_token_at = self.first_token_at or self.last_token_at
                yield step
        except (KeyboardInterrupt, GeneratorExit):
            self.answer.stop = "interrupted"
            raise
        finally:
            if self.answer.text or self.answer.stop != "interrupted":
                self._log(text)

    @property
    def prefill_seconds(self) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - self.started_at

    @property
    def tokens_per_second(self) -> float | None:
        """Decoding speed after the first token (the prompt's prefill left out)."""
        n = len(self.answer.tokens)
        if n < 2 or self.last_token_at == self.first_token_at:
            return None
        return (n - 1) / (self.last_token_at - self.first_token_at)

    def _log(self, text: str) -> None:
        meta = {"command": "generate", "llm": str(self.models.llm.path), "slm": str(self.models.slm.path)}
        with Store.open() as store:
            self.conversation_id = store.start_conversation(self.profile, meta)
            if self.decoder.llm_system:
                store.add_message(self.conversation_id, "system", self.decoder.llm_system)
            store.add_message(self.conversation_id, "user", text)
            store.add_message(
                self.conversation_id, "assistant", self.answer.text,
                {"drift": self.steering is not None, "beta": self.settings.beta, "stop": self.answer.stop},
            )
