"""Game-rule violations, each with a stable machine-readable code."""

from __future__ import annotations


class DomainError(Exception):
    """A command the rules refuse; ``code`` is stable, ``str(error)`` reads as game text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def refuse(code: str, message: str) -> DomainError:
    """Build the error for a refused command (``raise refuse("no_exit", "...")``)."""
    return DomainError(code, message)
