"""Progress bars with ETA on stderr (stdout stays clean for --json and pipes)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from drift_local.cli.common import err_console


@contextmanager
def token_progress(label: str, estimate: Callable[[int], float] | None = None) -> Iterator[Callable[[int], Callable[[int], None]]]:
    """Yields start(total) -> advance(n): a bar counting tokens, shown once work starts.
    With `estimate(total) -> seconds`, the size and rough duration are said up front."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tokens"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )

    def start(total: int) -> Callable[[int], None]:
        if estimate is not None:
            err_console.print(f"{label}: {total:,} tokens, roughly {_duration(estimate(total))} (Ctrl-C keeps what is done)", highlight=False)
        progress.start()
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    try:
        yield start
    finally:
        progress.stop()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
