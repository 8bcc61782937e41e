"""Open the message queue by URL: ``memory://`` (in-process) or a NATS server list.

A NATS URL names one server or several, the servers of one cluster, separated by commas:
``nats://h1:4222,h2:4222,h3:4222`` or ``nats://h1:4222,nats://h2:4222``; the client connects to
any of them and fails over to the others. After the last server come the optional path, which
names the JetStream stream (default ``AQ_EVENTS``) so that several deployments or test runs can
share one NATS server without seeing each other's events, and ``?replicas=N``, the stream's
replica count (1..5; see messaging/nats.py for what a replicated stream guarantees, and what
happens to an existing stream with another count). Credentials belong to the server they are
written on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import SplitResult, parse_qsl

from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.messaging.ports import MessageQueue
from adventure_quest.store.errors import StoreUrlError, parse_url

#: JetStream keeps at most five replicas of a stream.
MAX_REPLICAS = 5
_FORMS = "memory://, nats://HOST:PORT[,HOST:PORT...][/STREAM][?replicas=N]"


class QueueUrl(NamedTuple):
    """What a queue URL names; no servers means the in-process queue."""

    servers: tuple[str, ...]
    stream: str
    #: The stream's replica count; None when the URL does not say (an existing stream keeps its
    #: own, a new one gets 1).
    replicas: int | None


def check_queue_url(url: str) -> QueueUrl:
    """What a queue URL names, without connecting; raises StoreUrlError naming the supported
    forms."""
    scheme = url.partition(":")[0]
    if scheme == "memory":
        parse_url(url)
        return QueueUrl((), "", None)
    if scheme == "nats":
        return _nats_url(url)
    raise StoreUrlError(f"unsupported queue URL {url!r}; supported: {_FORMS}")


def _nats_url(url: str) -> QueueUrl:
    *others, last = (_server_parts(url, entry) for entry in url.split(","))
    for parts in others:
        if parts.path or parts.query or parts.fragment:
            raise StoreUrlError(
                f"queue URL {url!r}: the stream and ?replicas= come once, after the last server"
            )
    stream = last.path.strip("/") or "AQ_EVENTS"
    if not stream.replace("_", "").replace("-", "").isalnum():
        raise StoreUrlError(f"queue URL {url!r}: {stream!r} is not a valid stream name")
    servers = tuple(p._replace(path="", query="", fragment="").geturl() for p in (*others, last))
    return QueueUrl(servers, stream, _replicas(url, last))


def _server_parts(url: str, entry: str) -> SplitResult:
    """One server of the list; a bare ``HOST:PORT`` is a ``nats://`` server."""
    try:
        parts = parse_url(entry if "://" in entry else f"nats://{entry}")
    except StoreUrlError as error:
        raise StoreUrlError(f"queue URL {url!r}: server {entry!r} has a malformed port") from error
    if parts.scheme != "nats" or not parts.hostname:
        raise StoreUrlError(f"queue URL {url!r}: {entry!r} is not a server (nats://HOST:PORT)")
    return parts


def _replicas(url: str, last: SplitResult) -> int | None:
    try:
        options = parse_qsl(last.query, keep_blank_values=True, strict_parsing=bool(last.query))
    except ValueError as error:
        raise StoreUrlError(f"queue URL {url!r}: cannot parse {last.query!r}: {error}") from error
    if len(options) > 1 or last.fragment or any(key != "replicas" for key, _ in options):
        raise StoreUrlError(f"queue URL {url!r}: the only option is one ?replicas=N")
    if not options:
        return None
    value = options[0][1]
    if not value.isdigit() or not 1 <= int(value) <= MAX_REPLICAS:
        raise StoreUrlError(f"queue URL {url!r}: replicas must be 1..{MAX_REPLICAS}, not {value!r}")
    return int(value)


def open_queue(url: str, *, partitions: int, groups: Sequence[str]) -> MessageQueue:
    """The queue a URL names; ``groups`` are the consumer groups an in-process queue serves."""
    servers, stream, replicas = check_queue_url(url)
    if not servers:
        return MemoryQueue(groups, partitions)
    from adventure_quest.messaging.nats import NatsQueue

    prefix = "aq.events" if stream == "AQ_EVENTS" else f"aq.{stream.lower()}"
    return NatsQueue(
        ",".join(servers),
        stream=stream,
        partitions=partitions,
        subject_prefix=prefix,
        replicas=replicas,
    )
