"""Open the message queue by URL: ``memory://`` (in-process) or ``nats://HOST:PORT[/STREAM]``.

The optional path names the JetStream stream (default ``AQ_EVENTS``), so several deployments
or test runs can share one NATS server without seeing each other's events.
"""

from __future__ import annotations

from collections.abc import Sequence

from adventure_quest.messaging.memory import MemoryQueue
from adventure_quest.messaging.ports import MessageQueue
from adventure_quest.store.errors import StoreUrlError, parse_url


def check_queue_url(url: str) -> tuple[str, str]:
    """The server and stream a queue URL names (``memory`` for the in-process queue), without
    connecting; raises StoreUrlError naming the supported forms."""
    parts = parse_url(url)
    if parts.scheme == "memory":
        return "memory", ""
    if parts.scheme == "nats":
        stream = parts.path.strip("/") or "AQ_EVENTS"
        if not stream.replace("_", "").replace("-", "").isalnum():
            raise StoreUrlError(f"queue URL {url!r}: {stream!r} is not a valid stream name")
        return parts._replace(path="", query="", fragment="").geturl(), stream
    raise StoreUrlError(f"unsupported queue URL {url!r}; supported: memory://, nats://HOST:PORT")


def open_queue(url: str, *, partitions: int, groups: Sequence[str]) -> MessageQueue:
    """The queue a URL names; ``groups`` are the consumer groups an in-process queue serves."""
    server, stream = check_queue_url(url)
    if server == "memory":
        return MemoryQueue(groups, partitions)
    from adventure_quest.messaging.nats import NatsQueue

    prefix = "aq.events" if stream == "AQ_EVENTS" else f"aq.{stream.lower()}"
    return NatsQueue(server, stream=stream, partitions=partitions, subject_prefix=prefix)
