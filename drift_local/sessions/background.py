"""Work that goes on while the person reads or types: one thread, jobs run in order.

llama.cpp contexts and SQLite connections stay on the thread that made them, so the worker
opens its own (`open`, run on its thread) and hands them to every job. The thread is a daemon
and jobs check `stopping` between tokens or scoring waves (raising Cancelled), so quitting
never waits for them: what a job has not committed is only a cache, recomputed on demand.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable


class Cancelled(Exception):
    """Background work stopped because the session ended."""


class Worker:
    def __init__(self, name: str, open: Callable[[], Any], close: Callable[[Any], None] = lambda resources: None):
        self.stopping = threading.Event()
        self._jobs: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(open, close), name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Any], Any]) -> Future:
        """`work(resources)` on the worker's thread, after the jobs before it."""
        future: Future = Future()
        self._jobs.put((work, future))
        return future

    def check(self) -> None:
        """Raise Cancelled once the session is ending (jobs call it between steps)."""
        if self.stopping.is_set():
            raise Cancelled

    def close(self, timeout: float = 1.0) -> bool:
        """Stop the job in progress and end the thread; False if it is still inside one
        llama.cpp call after `timeout` seconds (the process may exit without it)."""
        self.stopping.set()
        self._jobs.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self, open: Callable[[], Any], close: Callable[[Any], None]) -> None:
        try:
            resources = open()
        except BaseException as exc:  # every job reports why the worker could not start
            while (job := self._jobs.get()) is not None:
                job[1].set_exception(exc)
            return
        try:
            while (job := self._jobs.get()) is not None:
                work, future = job
                if self.stopping.is_set() or not future.set_running_or_notify_cancel():
                    future.cancel()
                    continue
                try:
                    future.set_result(work(resources))
                except BaseException as exc:
                    future.set_exception(exc)
        finally:
            close(resources)
