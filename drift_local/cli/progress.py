"""Progress bars with ETA on stderr (stdout stays clean for --json and pipes)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from drift_local.cli.common import err_console


@contextmanager
def token_progress(label: str) -> Iterator[Callable[[int], Callable[[int], None]]]:
    """Yields start(total) -> advance(n): a bar counting tokens, shown once work starts."""
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
        progress.start()
        task = progress.add_task(label, total=total)
        return lambda n: progress.advance(task, n)

    try:
        yield start
    finally:
        progress.stop()
