"""Chat formatting from the model's own template, rendered in a sandboxed Jinja environment.

Templates come from GGUF files, i.e. from the internet: they run in jinja2's immutable
sandbox, bounded in time, size and depth (template_limits), and can only build a string.
Each template is rendered once on a probe conversation when the model's chat format is made,
so a hostile or broken one fails at start-up. The date is pinned, so the same conversation
always gives the same tokens (cached rewards and KV states stay valid across days).

The template's own text is tokenized with control tokens parsed (<|im_start|> becomes the
control token); the messages' text never is, so a message cannot inject control tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Sequence

import llama_cpp

from drift_local.engine.model import Model
from drift_local.engine.template_limits import BoundedEnvironment, TemplateLimit
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


# A conversation of every role, to render each template once at start-up.
PROBE = (Message("system", "You are an AI assistant."), Message("user", "Hi."), Message("assistant", "Hello!"), Message("user", "Thanks."))
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")
TEMPLATE_HINT = "the model file's chat template is broken or hostile: use another copy or another model"


class TemplateRefused(DriftError):
    """The template called raise_exception: it does not accept this conversation's shape."""


def _raise(message: str) -> None:
    raise TemplateRefused(f"the model's chat template refused the conversation: {message}")


class ChatFormat:
    def __init__(self, model: Model):
        self.model = model
        self.uses_fallback = not model.chat_template
        self._env = BoundedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self._env.globals["raise_exception"] = _raise
        self._env.globals["strftime_now"] = PINNED_DATE.strftime
        try:
            self._template = self._env.from_string(model.chat_template or FALLBACK_TEMPLATE)
        except TemplateLimit as exc:
            raise DriftError(f"the chat template of {model.path.name} was stopped: {exc}", TEMPLATE_HINT) from None
        except Exception as exc:  # any parse failure, RecursionError included: the template is data we did not write
            raise DriftError(f"the chat template of {model.path.name} does not parse: {_one_line(exc)}", TEMPLATE_HINT) from None
        self._bos_text = model.token_bytes(model.bos, special=True).decode("utf-8", "replace") if model.bos >= 0 else ""
        self._eos_text = model.token_bytes(model.eos, special=True).decode("utf-8", "replace") if model.eos >= 0 else ""
        self._adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(model.vocab))
        for probe in (PROBE, PROBE[1:]):  # some templates refuse a system message; refusing is fine
            try:
                self.render(probe)
                break
            except TemplateRefused:
                continue

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        try:
            return self._env.render(self._template, {
                "messages": [{"role": m.role, "content": m.content} for m in messages],
                "add_generation_prompt": add_generation_prompt,
                "bos_token": self._bos_text,
                "eos_token": self._eos_text,
                "date_string": PINNED_DATE.strftime("%d %b %Y"),
            })
        except TemplateRefused:
            raise
        except TemplateLimit as exc:
            raise DriftError(f"the chat template of {self.model.path.name} was stopped: {exc}", TEMPLATE_HINT) from None
        except Exception as exc:  # whatever the template's code raised (RecursionError, TypeError, ...)
            raise DriftError(f"the chat template of {self.model.path.name} failed: {_one_line(exc)}", TEMPLATE_HINT) from None

    def tokens(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> list[int]:
        text = self.render(messages, add_generation_prompt=add_generation_prompt)
        # Templates that write the BOS text themselves must not get a second one from the tokenizer.
        add_bos = self._adds_bos and not (self._bos_text and text.startswith(self._bos_text))
        if not any(self._has_control_text(m.content) for m in messages):
            return self.model.tokenize(text, add_bos=add_bos, special=True)
        tokens: list[int] = []
        for piece, is_template in self._pieces(messages, text, add_generation_prompt):
            tokens += self.model.tokenize(piece, add_bos=add_bos and not tokens, special=is_template)
        return tokens

    @cached_property
    def _control_text(self) -> re.Pattern | None:
        texts = self.model.control_texts
        return re.compile("|".join(map(re.escape, texts))) if texts else None

    def _has_control_text(self, content: str) -> bool:
        return self._control_text is not None and self._control_text.search(content) is not None

    def _pieces(self, messages: Sequence[Message], text: str, add_generation_prompt: bool) -> list[tuple[str, bool]]:
        """`text` cut into the template's own pieces (True) and the messages' text (False).

        The template is rendered again with a placeholder for each message's text; what lies
        between placeholders is the template's. Templates may trim a message: each is looked
        for as written, then trimmed.
        """
        marked = self.render([Message(m.role, f"\ue000{i}\ue001") for i, m in enumerate(messages)], add_generation_prompt=add_generation_prompt)
        split = _PLACEHOLDER.split(marked)  # template, index, template, index, ..., template
        literals, indices = split[0::2], [int(i) for i in split[1::2]]
        pieces: list[tuple[str, bool]] = []
        at = 0
        for n, literal in enumerate(literals):
            if not text.startswith(literal, at):
                break
            pieces.append((literal, True))
            at += len(literal)
            if n == len(indices):
                if at == len(text):
                    return [p for p in pieces if p[0]]
                break
            content, after = messages[indices[n]].content, literals[n + 1]
            shown = next((s for s in (content, content.strip(), content.lstrip(), content.rstrip())
                          if text.startswith(s, at) and text.startswith(after, at + len(s))), None)
            if shown is None:
                break
            pieces.append((shown, False))
            at += len(shown)
        raise DriftError(
            f"a message contains control-token text ({self._control_text_in(messages)!r}) that the chat "
            f"template of {self.model.path.name} rewrites, so it cannot be kept as plain text",
            "remove that text from the message",
        )

    def _control_text_in(self, messages: Sequence[Message]) -> str:
        found = (self._control_text.search(m.content) for m in messages if self._control_text)
        return next((match.group() for match in found if match), "")

    @cached_property
    def end_of_turn(self) -> int | None:
        """The token the template closes an assistant turn with, if it is an end-of-generation one.

        A complete response's probability includes ending where it ends; the fallback
        template closes a turn with plain text, so it has none.
        """
        marker = "\u2063end\u2063"
        try:
            rendered = self.render([Message("user", "hi"), Message("assistant", marker)], add_generation_prompt=False)
        except TemplateRefused:  # a template may insist on a shape; then score without the end
            return None
        after = rendered.split(marker, 1)[1] if marker in rendered else ""
        tokens = self.model.tokenize(after, special=True)
        return tokens[0] if tokens and self.model.is_end_of_generation(tokens[0]) else None

    def prompt_tokens(self, system: str | None, user: str) -> list[int]:
        """The tokens before the assistant's answer to one user message."""
        messages = ([Message("system", system)] if system is not None else []) + [Message("user", user)]
        return self.tokens(messages)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
