"""LLM and sLM must share a tokenizer: Drift adds their logits token by token."""

from __future__ import annotations

import llama_cpp

from drift_local.engine.model import Model
from drift_local.errors import DriftError

_FILLER = llama_cpp.LLAMA_TOKEN_ATTR_UNUSED | llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN


def shared_vocab_size(llm: Model, slm: Model, samples: int = 1024) -> int:
    """The number of leading token ids both models read the same way; raises if they differ.

    Vocabularies may differ in length only by padding (e.g. Qwen2.5 sizes pad to different
    multiples): the longer one's extra entries must be unused or control tokens.
    """
    if llm is slm:
        return llm.n_vocab
    n = min(llm.n_vocab, slm.n_vocab)
    longer = llm if llm.n_vocab > slm.n_vocab else slm
    extra = range(n, longer.n_vocab)
    if any(not (llama_cpp.llama_vocab_get_attr(longer.vocab, t) & _FILLER) for t in extra):
        _mismatch(llm, slm, f"vocabulary sizes differ ({llm.n_vocab} vs {slm.n_vocab})")
    step = max(1, n // samples)
    ids = set(range(0, n, step)) | set(range(max(0, n - 64), n))
    ids |= {t for t in (llm.bos, llm.eos, slm.bos, slm.eos) if 0 <= t < n}
    for token in sorted(ids):
        a, b = llm.token_text(token), slm.token_text(token)
        if a != b:
            _mismatch(llm, slm, f"token {token} is {a!r} in one and {b!r} in the other")
    return n


def _mismatch(llm: Model, slm: Model, detail: str) -> None:
    raise DriftError(
        f"the LLM {llm.path.name} and the sLM {slm.path.name} do not share a tokenizer: {detail}",
        "pick two models of one family (see the tokenizer column of: drift-local models list)",
    )
