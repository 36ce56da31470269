"""A GGUF model loaded once per process; contexts are created from it.

Loading the same file for the LLM and the sLM returns the same object, so the weights
are in memory once (llama.cpp mmaps them; a second `Llama` would map and page them again).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import llama_cpp

from drift_local.engine import native
from drift_local.errors import DriftError

GGUF_MAGIC = b"GGUF"
_models: dict[str, "Model"] = {}
_models_lock = threading.Lock()


@dataclass(frozen=True)
class ModelSettings:
    n_gpu_layers: int = -1  # -1: all layers on the GPU when llama.cpp was built with one


def load_model(path: str | os.PathLike, settings: ModelSettings = ModelSettings()) -> "Model":
    """The model at `path`, loaded on first use and shared afterwards."""
    key = os.path.realpath(path)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = Model(Path(key), settings)
        return model


def check_gguf_file(path: Path) -> None:
    if not path.exists():
        raise DriftError(f"no such model file: {path}", "check the path, or see: drift-local models list")
    if not path.is_file():
        raise DriftError(f"not a file: {path}")
    with path.open("rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise DriftError(f"not a GGUF model file: {path}", "drift-local runs GGUF models (llama.cpp format)")


def fingerprint(path: Path) -> str:
    """A cheap identity for cached rewards: size plus hashes of the head, middle and tail."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    chunk = 1 << 20
    with path.open("rb") as f:
        for offset in (0, max(0, size // 2 - chunk // 2), max(0, size - chunk)):
            f.seek(offset)
            digest.update(f.read(chunk))
    return f"{path.stem}:{size}:{digest.hexdigest()[:16]}"


class Model:
    def __init__(self, path: Path, settings: ModelSettings):
        check_gguf_file(path)
        native.start()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = settings.n_gpu_layers
        params.use_extra_bufts = not native.built_with_amx()
        self.path = path
        self.ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            detail = native.last_error()
            raise DriftError(
                f"cannot load model {path.name}" + (f": {detail}" if detail else ""),
                "the file may be truncated or corrupt; download it again (drift-local models pull)",
            )
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self.ptr)
        self.bos = llama_cpp.llama_vocab_bos(self.vocab)
        self.eos = llama_cpp.llama_vocab_eos(self.vocab)
        self._lock = threading.Lock()

    # --- identity and metadata -------------------------------------------------------
    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.path)

    @property
    def name(self) -> str:
        return self.metadata("general.name") or self.path.stem

    @property
    def size_bytes(self) -> int:
        return int(llama_cpp.llama_model_size(self.ptr))

    def metadata(self, key: str) -> str | None:
        size = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), None, 0)
        if size < 0:
            return None
        buf = ctypes.create_string_buffer(size + 1)
        llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, size + 1)
        return buf.value.decode("utf-8", errors="replace")

    @cached_property
    def chat_template(self) -> str | None:
        return self.metadata("tokenizer.chat_template")

    # --- tokenizer ---------------------------------------------------------------------
    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        """Token ids of `text`. `special` parses control tokens such as <|im_start|> in it."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_bos, special)
        if n < 0:  # the buffer was too small: -n is the size needed
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, capacity, add_bos, special)
        return list(buf[:n])

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def token_text(self, token: int) -> str:
        """The vocabulary entry itself (e.g. 'Ġthe'), as used for tokenizer comparison."""
        raw = llama_cpp.llama_vocab_get_text(self.vocab, token)
        return (raw or b"").decode("utf-8", errors="replace")

    def is_end_of_generation(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    @cached_property
    def control_texts(self) -> tuple[str, ...]:
        """Texts that tokenize(special=True) turns into control tokens (<|im_start|>, <s>, ...)."""
        parsed = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
        texts = {self.token_text(t) for t in range(self.n_vocab) if llama_cpp.llama_vocab_get_attr(self.vocab, t) & parsed}
        return tuple(sorted(filter(None, texts), key=len, reverse=True))

    @cached_property
    def end_of_generation_ids(self) -> tuple[int, ...]:
        """Every token that ends an answer (EOS, end of turn, ...)."""
        return tuple(t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t))

    def __repr__(self) -> str:
        return f"Model({self.path.name}, n_vocab={self.n_vocab})"
