"""Logging, configured in one place for every ``aq`` command (docs/operations.md, "Logs").

One handler on the root logger writes every record to standard error, the libraries' too
(uvicorn, Litestar, nats, asyncpg, httpx: none installs a handler of its own), as text or as
JSON lines: the time (ISO 8601, UTC), the level, the logger (the module that logged) and the
message, then the request id while an HTTP request is handled (api/access_log.py), and the
traceback when there is one. The project's loggers log from ``log_level`` up; the libraries'
warnings and errors only, unless ``log_level`` is debug. A warning or error that repeats is
written once and then at most once every ``REPEAT_WINDOW_S`` per logger, level and message
template, with how many were held back: with NATS down, the 64 jobs of a worker, retrying,
wrote about 580 lines in 15 s (and the NATS client as many again, messaging/nats.py).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import msgspec

from adventure_quest.api import access_log
from adventure_quest.config import Settings

#: The loggers the level applies to; every other logger is a library's.
PROJECT = "adventure_quest"
ACCESS = access_log.log.name
#: Seconds between two lines of one repeated warning or error.
REPEAT_WINDOW_S = 10.0
#: Templates the repeat filter remembers, at most; then it starts afresh (a message built without
#: a template is a template of its own).
MAX_REPEAT_KEYS = 1024

_encode = msgspec.json.Encoder().encode


def configure(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """Log as ``settings`` say, to ``stream`` (standard error, looked up at each line).

    Idempotent: the handler a previous call installed is replaced, not added to.
    """
    level = logging.getLevelNamesMapping()[settings.log_level.upper()]
    handler = StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    handler.addFilter(RepeatFilter())
    reset()
    # No line shows the thread or the process: records need not look them up (about 1 us each).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    logging.getLogger(PROJECT).setLevel(level)
    # Above INFO the access log is silent, and the API skips it (one check a request).
    logging.getLogger(ACCESS).setLevel(logging.NOTSET if settings.access_log else logging.WARNING)
    if settings.access_log and level <= logging.INFO:
        handler.access = access_log.writer = AccessLines(handler, settings.log_format == "json")
        atexit.unregister(flush_access)  # registered once, however often configured
        atexit.register(flush_access)
    return handler


def reset() -> None:
    """Remove what ``configure`` installed (the end of an ``aq`` command run in process)."""
    flush_access()
    access_log.writer = None
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, StreamHandler)]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(PROJECT).setLevel(logging.NOTSET)
    logging.getLogger(ACCESS).setLevel(logging.NOTSET)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = True


class StreamHandler(logging.Handler):
    """Writes each record as one line to ``stream``, or to the ``sys.stderr`` of the moment.

    Looked up at each line rather than kept: a command run in process (tests, CliRunner) has
    its own ``sys.stderr``, closed once the command is done.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream
        #: The access lines waiting to be written: written first, so the log stays in order.
        self.access: AccessLines | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.access is not None:
            self.access.flush()
        try:
            self.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text)
        stream.flush()


#: Access lines written together, at most this many...
ACCESS_BATCH = 256
#: ...or this long after the first of them (seconds).
ACCESS_DELAY_S = 0.2


class AccessLines:
    """The API's access lines (api/access_log.py), in the format of every other line, written
    in batches: one write for up to ``ACCESS_BATCH`` lines, none later than ``ACCESS_DELAY_S``
    (and all before any other line). A line made here costs about a fifth of one made through
    a LogRecord, its filters and its formatter."""

    def __init__(self, handler: StreamHandler, json: bool) -> None:
        self.handler = handler
        self.json = json
        self.pending: list[str] = []
        self._lock = threading.Lock()
        self._timer: asyncio.TimerHandle | None = None

    def write(self, line: access_log.Line) -> None:
        method, path, status, ms, client, rid = line
        now = time.time()
        stamp = f"{_second(int(now))}.{int((now - int(now)) * 1000):03d}Z"
        message = f"{method} {path} {status or '-'} {ms:.2f} ms {client or '-'}"
        if self.json:
            fields: dict[str, object] = {
                "time": stamp,
                "level": "INFO",
                "logger": ACCESS,
                "message": message,
            }
            if rid is not None:
                fields["request_id"] = rid
            fields["method"], fields["path"], fields["status"] = method, path, status or None
            fields["duration_ms"], fields["client"] = round(ms, 3), client
            text = _encode(fields).decode()
        elif rid is None:
            text = f"{stamp} INFO {ACCESS}: {message}"
        else:
            text = f"{stamp} INFO {ACCESS}: {message} request_id={rid}"
        with self._lock:
            self.pending.append(text)
            count = len(self.pending)
        if count >= ACCESS_BATCH:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(ACCESS_DELAY_S, self.flush)
            except RuntimeError:  # no loop to wait on: now, then
                self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            lines, self.pending = self.pending, []
        if lines:
            try:
                self.handler.write("\n".join(lines) + "\n")
            except Exception:
                logging.raiseExceptions and sys.stderr.write("access log: cannot write\n")


def flush_access() -> None:
    """Write the access lines still waiting (a server that stops, the end of a command)."""
    if access_log.writer is not None and isinstance(access_log.writer, AccessLines):
        access_log.writer.flush()


def _time(record: logging.LogRecord) -> str:
    """The record's time in ISO 8601, UTC, to the millisecond: ``2025-01-31T12:00:00.123Z``."""
    return f"{_second(int(record.created))}.{int(record.msecs):03d}Z"


@functools.lru_cache(maxsize=4)
def _second(whole: int) -> str:
    """Formatted once a second, not once a line (the access log writes thousands a second)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE [request_id=ID]``, then the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        rid = access_log.request_id.get()
        if rid is not None:
            line += f" request_id={rid}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object a record: time, level, logger, message, then what the record has of
    request_id, the access log's fields, repeated and exc_info (the traceback, as text)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = access_log.request_id.get()
        if rid is not None:
            line["request_id"] = rid
        if record.name == ACCESS:  # only there: another logger's "path" could be any object
            for field in access_log.FIELDS:
                line[field] = record.__dict__.get(field)
        if "repeated" in record.__dict__:
            line["repeated"] = record.__dict__["repeated"]
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return _encode(line).decode()


class RepeatFilter(logging.Filter):
    """Lets a warning or error through the first time, then once per ``window_s`` at most.

    Records are the same when their logger, level and message template are (not their
    arguments: "partition 3: ..." and "partition 7: ..." are one template). The line let
    through after a quiet spell says how many were held back: "... (repeated 41 times)".
    Held-back records are only counted; the count of the last ones shows with the next line of
    the same template, if one ever comes. Records below WARNING all pass: the access log is
    one template at INFO.
    """

    def __init__(
        self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        #: (logger, level, template) -> (when the last one was let through, held back since).
        self.seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        with self._lock:
            last = self.seen.get(key)
            if last is not None and now - last[0] < self.window_s:
                self.seen[key] = (last[0], last[1] + 1)
                return False
            if len(self.seen) >= MAX_REPEAT_KEYS:
                self.seen.clear()
            self.seen[key] = (now, 0)
        held = last[1] if last is not None else 0
        if held:
            record.msg = f"{record.msg} (repeated {held} times)"
            record.repeated = held
        return True
