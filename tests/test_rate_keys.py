"""rate in a real terminal (a pty): undo shows the undone pair again, q returns at once."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time

from drift_local.config import Settings, save_settings
from drift_local.store.store import Store
from drift_local.sessions.rate import bundled_prompts

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")


class Terminal:
    def __init__(self, *args: str):
        self.master, slave = pty.openpty()
        env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
        self.process = subprocess.Popen([sys.executable, "-m", "drift_local", *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.screen = ""

    def read_until(self, needle, timeout: float = 120) -> str:
        """Output since the last call, up to a frame containing `needle` (text or a test)."""
        found = needle if callable(needle) else lambda seen: needle in seen
        seen = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    seen += ANSI.sub("", os.read(self.master, 65536).decode(errors="replace"))
                except OSError:
                    break
                if found(seen):
                    return seen
            elif self.process.poll() is not None:
                break
        raise AssertionError(f"{needle!r} never appeared; the screen said: {seen[-2000:]}")

    def press(self, key: str) -> None:
        os.write(self.master, key.encode())


def prompt_in(screen: str) -> str | None:
    return next((p for p in bundled_prompts() if p[:40] in screen), None)


def next_pair(term: Terminal, status: str) -> str:
    """The prompt of the pair on screen once it and `status` are shown."""
    def written(seen: str) -> bool:  # the last frame shows the pair whole (▌ marks answers being written)
        frame = seen.rsplit(status, 1)[1] if status in seen else ""
        return bool(prompt_in(frame)) and "q quit" in frame and "▌" not in frame

    return prompt_in(term.read_until(written).rsplit(status, 1)[1])


def test_undo_shows_the_pair_again_and_q_quits_at_once(tiny_gguf):
    save_settings(Settings(method="paper"))  # the closed form refits at once
    with Store.open() as store:  # four attributes keep the scoring quick
        profile = store.create_profile("me")
        for attribute in store.profile_attributes(profile)[4:]:
            store.set_attribute_enabled(profile, attribute.name, False)
    term = Terminal("rate", "--llm", str(tiny_gguf), "--profile", "me", "--n", "5", "--max-tokens", "8")
    try:
        first = next_pair(term, "choice 1 of 5")
        term.press("1")
        second = next_pair(term, "choice 2 of 5")
        term.press("u")
        screen = term.read_until("here is that pair again")
        assert prompt_in(screen.rsplit("choice 1 of 5", 1)[1]) == first != second
        term.press("x")
        assert "'x' is not a key here" in term.read_until("not a key")
        started = time.monotonic()
        term.press("q")
        term.process.wait(timeout=10)
        assert time.monotonic() - started < 2.0
        assert term.process.returncode == 0
    finally:
        if term.process.poll() is None:
            term.process.kill()
        os.close(term.master)
