"""Ctrl-C held back while a change is stored and reported, so that what the screen says is what happened."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def held_interrupts() -> Iterator[list[int]]:
    """Within the block a Ctrl-C is recorded (in the list yielded) instead of raised.

    For short, final steps only: a transaction and the line that reports it. Without this,
    a Ctrl-C just after COMMIT would report a stored import as interrupted.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
