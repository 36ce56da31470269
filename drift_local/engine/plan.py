"""Plan which tokens to decode so that sequences sharing a prefix compute it once.

The new tokens of all sequences form a trie. Each trie node is one KV cell, tagged with
every sequence that passes through it: llama.cpp computes the token once (attending as the
first of those sequences, whose history is identical) and stores it for all of them.
Sequences share a node only if they hold the same cached tokens: then their histories are
identical, and llama.cpp accepts them coupled in one batch (it requires equal positions).
A cache of per-sequence streams cannot share a cell: there each sequence gets its own
chain of nodes, in increasing sequence id, as llama.cpp splits a batch into one ubatch per
run of consecutive ids (tokens out of that order cost a ubatch each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass
class Node:
    token: int
    pos: int
    seqs: list[int]
    wants_logits: bool = False
    children: dict[int, "Node"] = field(default_factory=dict)


def build_plan(
    starts: Mapping[int, int],
    targets: Mapping[int, Sequence[int]],
    logits_at: Mapping[int, Sequence[int]],
    share: bool = True,
) -> list[Node]:
    """Nodes in an order llama.cpp accepts (parents first, positions increasing per sequence).

    starts[seq]: tokens of targets[seq] already in the KV cache.
    logits_at[seq]: positions of targets[seq] whose next-token logits are wanted.
    share: sequences may share nodes (a unified KV cache); otherwise sequences in id order.
    """
    if not share:
        return [
            Node(tokens[pos], pos, [seq], pos in wanted)
            for seq, tokens in sorted(targets.items())
            for wanted in [set(logits_at.get(seq, ()))]
            for pos in range(starts[seq], len(tokens))
        ]
    roots: dict[tuple, Node] = {}  # (cached prefix, first new token)
    for seq, tokens in targets.items():
        start = starts[seq]
        wanted = set(logits_at.get(seq, ()))
        level = None
        for pos in range(start, len(tokens)):
            token = tokens[pos]
            siblings = roots if level is None else level.children
            key = (tuple(tokens[:start]), token) if level is None else token
            node = siblings.get(key)
            if node is None:
                node = siblings[key] = Node(token, pos, [])
            node.seqs.append(seq)
            node.wants_logits |= pos in wanted
            level = node
    order: list[Node] = []
    stack = list(reversed(roots.values()))
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(reversed(node.children.values()))
    return order
