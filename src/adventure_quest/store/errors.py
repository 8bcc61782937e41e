"""Errors raised by event and snapshot stores, each with a stable machine-readable code."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


class StoreError(Exception):
    """Base of every store error; ``code`` is stable and machine-readable."""

    code = "store_error"


class ConcurrencyError(StoreError):
    """The stream was not at the version the append expected."""

    code = "concurrency_conflict"

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the append expected {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class InvalidAppendError(StoreError):
    """The append itself is malformed (no events, bad expected version, bad stream id)."""

    code = "invalid_append"


class StoreUrlError(StoreError):
    """A store URL that cannot be parsed or names an unknown backend."""

    code = "store_url_invalid"


class StoreCorruptError(StoreError):
    """The store's file is not a readable store (corrupt, truncated or not ours)."""

    code = "store_corrupt"


class StoreSchemaError(StoreError):
    """The store's schema is missing or newer than this code understands."""

    code = "store_schema"


class StoreClosedError(StoreError):
    """The store was closed; no more appends are accepted."""

    code = "store_closed"


class StoreUnavailableError(StoreError):
    """The store cannot be reached right now; ``retryable`` says whether trying again can help.

    An append that fails this way may or may not have committed: retry it with the same events
    (same event ids) and the store answers with the original result instead of a duplicate.
    """

    code = "store_unavailable"

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def parse_url(url: str) -> SplitResult:
    """``urlsplit`` that reports a malformed URL as StoreUrlError instead of ValueError."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as error:
        raise StoreUrlError(f"cannot parse store URL {url!r}: {error}") from error
    return parts
