"""A llama.cpp context holding several sequences, each with its own KV state.

Two layouts of the KV cache. Unified (scoring): one pool of cells for all sequences, so a
token shared by several sequences is stored and computed once, but every token attends
over (and mask-checks) every cell in use. Per-sequence streams (decoding): each sequence
has n_ctx cells of its own and attends only over them, so a step's cost grows with the
number of sequences, not with its square; nothing is shared. Either way one
`llama_decode` advances any subset of the sequences. Logits come back as numpy views of
llama.cpp's buffer, never as Python lists.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import llama_cpp
import numpy as np

from drift_local.engine import native
from drift_local.engine.model import Model
from drift_local.engine.plan import Node, build_plan
from drift_local.errors import DriftError

LogitsConsumer = Callable[[list[Node], np.ndarray], None]


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ContextSettings:
    n_ctx: int = 4096  # tokens each sequence may hold
    n_batch: int = 512  # tokens per llama_decode call
    threads: int = 0  # 0: every available CPU
    flash_attn: bool = True  # skips masked KV cells, which unified multi-sequence caches have many of


class PromptTooLong(DriftError):
    pass


class Context:
    def __init__(
        self,
        model: Model,
        n_seq: int,
        settings: ContextSettings = ContextSettings(),
        n_cells: int | None = None,
        unified: bool = True,
    ):
        """`n_cells`: KV cells shared by all sequences (default: n_ctx for each of them);
        `unified` False gives each sequence a stream of n_ctx cells instead (n_cells unused)."""
        if not 1 <= n_seq <= 256:
            raise DriftError(f"a context holds 1 to 256 sequences, not {n_seq}")
        self.model = model
        self.n_seq = n_seq
        self.n_ctx_seq = min(settings.n_ctx, model.n_ctx_train) if model.n_ctx_train > 0 else settings.n_ctx
        self.unified = unified
        self.n_cells = (n_cells if unified else None) or self.n_ctx_seq * n_seq
        self.n_ctx_seq = min(self.n_ctx_seq, self.n_cells)
        self.n_batch = settings.n_batch
        threads = settings.threads or default_threads()
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.n_cells
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = n_seq
        params.kv_unified = unified
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO if settings.flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        mark = native.log_mark()
        self.ptr = llama_cpp.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            detail = native.last_error()
            raise DriftError(
                f"cannot create a context of {params.n_ctx} tokens for {model.path.name}"
                + (f": {detail}" if detail else ""),
                "lower --n-ctx or the number of attributes",
            )
        self.buffer_log = native.log_since(mark)
        self.memory = llama_cpp.llama_get_memory(self.ptr)
        self.n_vocab = model.n_vocab
        self.held: list[list[int]] = [[] for _ in range(n_seq)]
        self.decoded_tokens = 0  # tokens actually computed: shared prefixes count once
        self.decode_seconds = 0.0  # time inside llama_decode, for benchmarks
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, n_seq)
        self._tokens = np.ctypeslib.as_array(self._batch.token, shape=(self.n_batch,))
        self._pos = np.ctypeslib.as_array(self._batch.pos, shape=(self.n_batch,))
        self._n_seq_id = np.ctypeslib.as_array(self._batch.n_seq_id, shape=(self.n_batch,))
        self._want = np.ctypeslib.as_array(self._batch.logits, shape=(self.n_batch,))
        self._seq_ids = [np.ctypeslib.as_array(self._batch.seq_id[i], shape=(n_seq,)) for i in range(self.n_batch)]

    # --- memory --------------------------------------------------------------------------
    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self.memory, True)
        self.held = [[] for _ in range(self.n_seq)]

    def cached_prefix(self, seq: int, tokens: Sequence[int]) -> int:
        """How many leading tokens of `tokens` sequence `seq` already holds."""
        return _common_prefix(self.held[seq], tokens)

    def trim(self, seq: int, keep: int) -> None:
        """Forget everything sequence `seq` holds from position `keep` on."""
        if keep < len(self.held[seq]):
            llama_cpp.llama_memory_seq_rm(self.memory, seq, keep, -1)
            self.held[seq] = self.held[seq][:keep]

    def buffer_sizes_mib(self) -> dict[str, float]:
        """KV cache, compute and output buffer sizes, as llama.cpp reported them at creation."""
        last: dict[tuple[str, str], float] = {}  # (kind, device): the reserve step may repeat
        for device, kind, mib in re.findall(r"(\S+)\s+(KV|compute|output) buffer size\s*=\s*([\d.]+) MiB", self.buffer_log):
            last[(kind, device)] = float(mib)
        return {
            kind.lower(): sum(v for (k, _), v in last.items() if k == kind) for kind in ("KV", "compute", "output")
        }

    # --- decoding ------------------------------------------------------------------------
    def ingest(
        self,
        targets: Mapping[int, Sequence[int]],
        logits_at: Mapping[int, Sequence[int]] | None = None,
        consume: LogitsConsumer | None = None,
    ) -> None:
        """Make each sequence hold targets[seq], decoding only what it does not hold yet.

        Tokens a sequence already holds (its longest common prefix with the target) are
        kept; shared new prefixes are decoded once. For every position listed in
        logits_at[seq], `consume(nodes, rows)` receives the next-token logits: after each
        llama_decode, the nodes that asked for logits and a (len(nodes), n_vocab) view of
        them, valid only during the call.
        """
        logits_at = logits_at or {}
        starts = {}
        for seq, tokens in targets.items():
            if len(tokens) > self.n_ctx_seq:
                raise PromptTooLong(
                    f"{len(tokens)} tokens do not fit the context of {self.n_ctx_seq} tokens",
                    "shorten the prompt or raise --n-ctx",
                )
            keep = _common_prefix(self.held[seq], tokens)
            if keep == len(tokens) and any(p >= keep - 1 for p in logits_at.get(seq, ())):
                keep -= 1  # logits are only produced by decoding: recompute the last token
            self.trim(seq, keep)
            starts[seq] = keep
        plan = build_plan(starts, targets, logits_at, share=self.unified)
        try:
            for first in range(0, len(plan), self.n_batch):
                chunk = plan[first : first + self.n_batch]
                self._decode(chunk)
                if consume is not None:
                    wanted = [node for node in chunk if node.wants_logits]
                    if wanted:
                        consume(wanted, self._logits(len(wanted)))
        except BaseException:  # Ctrl-C included: what is cached is no longer known, start clean
            self.clear()
            raise
        for seq, tokens in targets.items():
            self.held[seq] = list(tokens)

    def last_logits(self, targets: Mapping[int, Sequence[int]]) -> np.ndarray:
        """Ingest, then return the next-token logits of each target, in the order given."""
        order = {seq: i for i, seq in enumerate(targets)}
        out = np.empty((len(targets), self.n_vocab), dtype=np.float32)

        def keep(nodes: list[Node], rows: np.ndarray) -> None:
            for node, row in zip(nodes, rows):
                for seq in node.seqs:
                    if node.pos == len(targets[seq]) - 1:
                        out[order[seq]] = row

        self.ingest(targets, {seq: [len(t) - 1] for seq, t in targets.items()}, keep)
        return out

    def _decode(self, chunk: list[Node]) -> None:
        n = len(chunk)
        self._batch.n_tokens = n
        for i, node in enumerate(chunk):
            self._tokens[i] = node.token
            self._pos[i] = node.pos
            self._n_seq_id[i] = len(node.seqs)
            self._seq_ids[i][: len(node.seqs)] = node.seqs
            self._want[i] = node.wants_logits
        started = time.perf_counter()
        status = llama_cpp.llama_decode(self.ptr, self._batch)
        self.decode_seconds += time.perf_counter() - started
        self.decoded_tokens += n
        if status != 0:
            detail = native.last_error()
            if status == 1:
                raise DriftError("the context is full", "raise --n-ctx or use fewer attributes")
            raise DriftError(f"llama_decode failed ({status})" + (f": {detail}" if detail else ""))

    def _logits(self, rows: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits(self.ptr)
        return np.ctypeslib.as_array(ptr, shape=(rows, self.n_vocab))

    def close(self) -> None:
        if getattr(self, "ptr", None):
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self.ptr)
            self.ptr = None

    def __del__(self) -> None:
        self.close()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on prefix equality (slices compare in C)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
