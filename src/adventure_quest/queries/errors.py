"""What the read side answers when it cannot answer as asked: a stable code and a message.

The HTTP API maps each kind to its status (api/errors.py); the read side itself knows no HTTP.
"""

from __future__ import annotations


class QueryError(Exception):
    """A query that cannot be answered as asked."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class NotFoundError(QueryError):
    """What was asked for does not exist (yet): ``player_not_found``, ``room_not_found``."""


class StaleError(QueryError):
    """The read models did not reach the consistency token in time (code ``stale``)."""

    def __init__(self, message: str) -> None:
        super().__init__("stale", message)


class InvalidTokenError(QueryError):
    """A consistency token that cannot be read (code ``invalid_consistency_token``)."""

    def __init__(self, message: str) -> None:
        super().__init__("invalid_consistency_token", message)
