"""Chat formatting from the model's own template, rendered in a sandboxed Jinja environment.

Templates come from GGUF files, i.e. from the internet: they run in jinja2's immutable
sandbox and can only build a string. The date is pinned, so the same conversation always
gives the same tokens (cached rewards and KV states stay valid across days).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Sequence

import jinja2
import llama_cpp
from jinja2.sandbox import ImmutableSandboxedEnvironment

from drift_local.engine.model import Model
from drift_local.errors import DriftError

PINNED_DATE = datetime(2024, 7, 26)  # the default Llama 3.1's own template falls back to

# Used only for models without a template, and announced to the user when it is.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


@dataclass(frozen=True)
class Message:
    role: str  # system, user or assistant
    content: str


def _raise(message: str) -> None:
    raise DriftError(f"the model's chat template refused the conversation: {message}")


class ChatFormat:
    def __init__(self, model: Model):
        self.model = model
        self.uses_fallback = not model.chat_template
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = PINNED_DATE.strftime
        try:
            self._template = env.from_string(model.chat_template or FALLBACK_TEMPLATE)
        except jinja2.TemplateError as exc:
            raise DriftError(f"{model.path.name} has a chat template that does not parse: {exc}") from None
        self._bos_text = model.token_bytes(model.bos, special=True).decode("utf-8", "replace") if model.bos >= 0 else ""
        self._eos_text = model.token_bytes(model.eos, special=True).decode("utf-8", "replace") if model.eos >= 0 else ""
        self._adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(model.vocab))

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        try:
            return self._template.render(
                messages=[{"role": m.role, "content": m.content} for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self._bos_text,
                eos_token=self._eos_text,
                date_string=PINNED_DATE.strftime("%d %b %Y"),
            )
        except jinja2.TemplateError as exc:
            raise DriftError(f"the chat template of {self.model.path.name} failed: {exc}") from None

    def tokens(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> list[int]:
        text = self.render(messages, add_generation_prompt=add_generation_prompt)
        # Templates that write the BOS text themselves must not get a second one from the tokenizer.
        add_bos = self._adds_bos and not (self._bos_text and text.startswith(self._bos_text))
        return self.model.tokenize(text, add_bos=add_bos, special=True)

    @cached_property
    def end_of_turn(self) -> int | None:
        """The token the template closes an assistant turn with, if it is an end-of-generation one.

        A complete response's probability includes ending where it ends; the fallback
        template closes a turn with plain text, so it has none.
        """
        marker = "\u2063end\u2063"
        try:
            rendered = self.render([Message("user", "hi"), Message("assistant", marker)], add_generation_prompt=False)
        except DriftError:  # a template may insist on a shape; then score without the end
            return None
        after = rendered.split(marker, 1)[1] if marker in rendered else ""
        tokens = self.model.tokenize(after, special=True)
        return tokens[0] if tokens and self.model.is_end_of_generation(tokens[0]) else None

    def prompt_tokens(self, system: str | None, user: str) -> list[int]:
        """The tokens before the assistant's answer to one user message."""
        messages = ([Message("system", system)] if system is not None else []) + [Message("user", user)]
        return self.tokens(messages)
