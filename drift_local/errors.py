"""User-facing errors: one clear line, plus what to do next."""


class DriftError(Exception):
    """An error the user can act on. The CLI prints it as one line, no traceback."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C, with what was kept: the CLI prints "interrupted: <message>"."""
