"""Single keypresses from the terminal, without Enter (POSIX cbreak mode; Windows msvcrt)."""

from __future__ import annotations

import contextlib
import sys


class KeyReader:
    def __enter__(self) -> "KeyReader":
        self._fd = sys.stdin.fileno()
        if sys.platform != "win32":
            import termios
            import tty

            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()

    def _restore(self) -> None:
        if sys.platform != "win32":
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    @contextlib.contextmanager
    def paused(self):
        """Normal line input (for typing a prompt) inside a keypress session."""
        self._restore()
        try:
            yield
        finally:
            self.__enter__()

    def read(self, timeout: float) -> str | None:
        """One key, or None after `timeout` seconds."""
        if sys.platform == "win32":
            import msvcrt
            import time

            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if msvcrt.kbhit():
                    return msvcrt.getwch()
                time.sleep(0.02)
            return None
        import os
        import select

        ready, _, _ = select.select([self._fd], [], [], timeout)
        return os.read(self._fd, 1).decode(errors="ignore") if ready else None
