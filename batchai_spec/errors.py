"""Errors a user can cause. The CLI prints their message and exits with their code; never a traceback."""


class UserError(Exception):
    """A problem the user can fix (bad spec, unreachable endpoint, failed job...): one clear message."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message
