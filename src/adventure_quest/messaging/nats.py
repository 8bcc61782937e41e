"""The NATS JetStream queue of the distributed shape.

One file-storage stream (``AQ_EVENTS`` by default) holds every partition; partition ``p`` is the
subject ``{subject_prefix}.{p}``. Each consumer group reads a partition through a durable pull
consumer named ``{group}-p{partition}``.

**A cluster, and replicas.** The queue's URL may list the servers of a cluster, separated by
commas (messaging/urls.py); the client connects to any that answers, in a random order, and when
it loses that server it reconnects to another. Meanwhile operations fail fast with
QueueUnavailableError and their callers (the relay, the workers) retry, as with one server
down. ``replicas`` is the stream's replica count (``?replicas=N`` on the URL): with R3 every
message is on three servers and a publish is acknowledged only once a majority (two) has stored
it, so an acknowledged message survives the loss of any one server, the stream's leader
included (a follower takes over within seconds: tests/messaging/test_nats_cluster.py kills
each); with two of three down the stream refuses reads and writes rather than lose any. The
durable consumers inherit the stream's replica count, and the partition leases' KV bucket is
created with it (processing/leases.py). What a given count does to an existing stream:

* not given: the stream is used with the count it has (a new one gets 1), so a process started
  without ``?replicas=`` never rescales a deployment's stream;
* given and different: the stream is updated to it (JetStream moves a stream between R1 and R3
  in place, keeping its messages), and the change is logged;
* more than one asked of a server outside a cluster: NatsStreamMismatchError, whether the stream
  exists or not (such a server would accept the update and report three replicas while it keeps
  one copy).

What the rest of the project relies on from JetStream, and where it stops:

* **Acknowledged is written, not fsync'd.** A publish ack means the server wrote the message
  into its file (the page cache); the file store fsyncs in the background every
  ``sync_interval``, two minutes by default. A crash of the nats-server *process* loses nothing
  acknowledged (tests/messaging/test_nats_failures.py kills it with SIGKILL), but a power loss,
  kernel panic or loss of the host of a single-replica stream can lose up to the last two
  minutes of acknowledged messages, and consumer acknowledgements (those only cause
  redelivery). Lost messages are the real danger: the relay has already moved its checkpoint
  past them, so no projection would ever see them (DESIGN.md invariants 1 and 4).
  ``jetstream { sync_interval: always }`` fsyncs each write before the ack and closes that
  window, at the cost of write throughput, but only nats-server 2.10 and later know the option:
  2.9.x rejects it as an unknown field and always syncs every two minutes. Without it, use
  replicas (R3, above) so that no single host's loss loses acknowledged messages: each copy
  still syncs every two minutes, so a power loss of two of the three hosts at once can.
* **De-duplication.** Every message carries ``Nats-Msg-Id`` = the event id, and the stream drops
  a second message with an id it saw within its ``duplicate_window`` (``DUPLICATE_WINDOW``,
  10 minutes). A relay that republishes after a crash inside that window creates no duplicates;
  after it, duplicates are possible and consumers absorb them by applying idempotently.
* **Ack policy ALL.** Acknowledging a message acknowledges every earlier message of the
  consumer, so ``ack()`` sends one ack for a whole batch. The catch is redelivery: unacked
  messages come back only after ``ACK_WAIT``, and a consumer that meanwhile fetches and acks
  later messages silently acknowledges the earlier ones too. So a ``NatsConsumer`` that finds
  deliveries from a previous owner still awaiting acknowledgement (that owner crashed) recreates
  the durable at its ack floor, and the unacked messages are delivered again at once and in
  order. That is why one (group, partition) must have one live consumer at a time. The consumer,
  ``ACK_WAIT`` and ``MAX_ACK_PENDING`` are in nats_consumer.py.
* **Order.** One connection publishes in the given order, so each subject (partition) stores
  the events in that order. A batch that fails part of the way through raises; publishing it
  again stores only what is missing, which can then follow a later event of the same
  partition (on one server a rare case: it takes one message refused and a later one stored).
  In a cluster it is what the loss of the stream's leader can do to a batch in flight: its
  messages get no answer until a follower is elected, and those published after that are
  stored before the retry of the earlier ones (tests/messaging/test_nats_cluster.py allows
  disorder among the events of a publish that was retried, and nowhere else). Consumers must
  therefore apply by stream version, not by arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from adventure_quest.messaging.nats_consumer import (
    _TRANSPORT_ERRORS,
    NatsConsumer,
    NatsStreamMismatchError,
)
from adventure_quest.messaging.ports import (
    DEFAULT_PARTITIONS,
    QueueUnavailableError,
    partition_of,
)
from adventure_quest.store.envelope import RecordedEvent

#: How long the stream remembers a message id to drop a republished copy (seconds).
DUPLICATE_WINDOW = 600.0
#: An existing stream with a shorter window is refused: a relay restart must fit in it.
MIN_DUPLICATE_WINDOW = 120.0

#: JetStream's error code for a stream whose storage could not be created (see _add_stream).
STORE_RACE = 10049
STORE_RACE_ATTEMPTS = 20
#: JetStream's error code for a stream of several replicas asked of a server outside a cluster.
NOT_CLUSTERED = 10074
#: JetStream keeps at most five replicas of a stream.
MAX_REPLICAS = 5
_RECONNECT_WAIT = 1  # seconds between reconnection attempts; nats-py takes an int
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_encoder = msgspec.msgpack.Encoder()
_log = logging.getLogger(__name__)


class NatsQueue:
    """The partitioned queue on one JetStream stream; connects on first use."""

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "AQ_EVENTS",
        partitions: int = DEFAULT_PARTITIONS,
        subject_prefix: str = "aq.events",
        timeout: float = 5.0,
        replicas: int | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"a queue needs at least one partition, not {partitions}")
        if replicas is not None and not 1 <= replicas <= MAX_REPLICAS:
            raise ValueError(f"a stream has 1..{MAX_REPLICAS} replicas, not {replicas}")
        #: One server's URL, or the servers of a cluster separated by commas.
        self.url = url
        self.servers = [server.strip() for server in url.split(",")]
        #: The replica count the stream must have; None: an existing stream keeps its own.
        self.replicas = replicas
        #: The stream's replica count as last seen (connecting creates, checks or rescales it).
        self.stream_replicas = replicas or 1
        self.stream = stream
        self.partitions = partitions
        self.subject_prefix = subject_prefix
        #: How often creating the stream lost the server's race for its directory (and was
        #: tried again).
        self.store_races = 0
        #: The longest wait for the server in any one operation (connect, acks, API calls).
        self.timeout = timeout
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._connecting = asyncio.Lock()
        #: Set by close(): a closed queue connects no more (one made while it ran is closed).
        self._closed = False
        self._unacked: set[asyncio.Future[api.PubAck]] = set()

    def subject(self, partition: int) -> str:
        return f"{self.subject_prefix}.{partition}"

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        if not events:
            return
        js = await self.jetstream()
        acks: list[asyncio.Future[api.PubAck]] = []
        try:
            for event in events:
                subject = self.subject(partition_of(event.stream_id, self.partitions))
                ack = await js.publish_async(
                    subject,
                    _encoder.encode(event),
                    wait_stall=self.timeout,
                    headers={"Nats-Msg-Id": event.event_id},
                )
                acks.append(ack)
                self._unacked.add(ack)
            async with asyncio.timeout(self.timeout):
                await asyncio.gather(*acks)
        except _TRANSPORT_ERRORS as error:
            for ack in acks:
                ack.cancel()
            raise self.unavailable(f"publishing {len(events)} events failed", error) from error
        finally:
            self._unacked.difference_update(acks)

    def consumer(self, group: str, partition: int) -> NatsConsumer:
        if not _NAME.fullmatch(group):
            raise ValueError(f"consumer group {group!r} must match {_NAME.pattern}")
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        return NatsConsumer(self, group, partition)

    async def ready(self) -> None:
        js = await self.jetstream()
        try:
            await js.stream_info(self.stream)
        except _TRANSPORT_ERRORS as error:
            raise self.unavailable(f"looking up stream {self.stream} failed", error) from error

    async def close(self) -> None:
        # close(), not drain(): nothing is in flight that draining would save, since publish
        # awaits every ack and ack() waits for the server's confirmation.
        self._closed = True
        client, self._client, self._js = self._client, None, None
        if client is not None:
            with contextlib.suppress(OSError):  # closing while reconnecting: no socket left
                await client.close()

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context of a live connection (made, with the stream, on first use)."""
        async with self._connecting:
            if self._closed:
                # A task still running after close() (a publish cut short by a failure) must
                # not connect again: nobody would close that connection (ResourceWarning once
                # the loop is gone).
                raise self.unavailable("the queue is closed")
            if self._client is None or self._js is None or self._client.is_closed:
                client, js = await self._connect()
                if self._closed:
                    # close() ran while this connected: the same, for a connection just made.
                    with contextlib.suppress(OSError):
                        await client.close()
                    raise self.unavailable("the queue was closed while connecting")
                self._client, self._js = client, js
        if not self._client.is_connected:
            raise self.unavailable("the connection is lost, reconnecting")
        return self._js

    def unavailable(self, what: str, error: BaseException | None = None) -> QueueUnavailableError:
        detail = f": {type(error).__name__} {error}".rstrip() if error is not None else ""
        return QueueUnavailableError(f"NATS at {_redacted(self.url)}: {what}{detail}")

    async def _connect(self) -> tuple[Client, JetStreamContext]:
        client = Client()
        try:
            await self._open(client)
            js = client.jetstream(timeout=self.timeout)
            await self._ensure_stream(js)
        except _TRANSPORT_ERRORS as error:
            await client.close()
            raise self.unavailable("cannot connect", error) from error
        except BaseException:
            await client.close()
            raise
        return client, js

    async def _open(self, client: Client) -> None:
        """Connect, failing once every server refused; once connected, reconnect forever.

        While reconnecting, operations fail fast (see jetstream()) instead of queueing up.
        """
        first_error: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        # The client tries the servers in a random order: one refusal says nothing of the
        # others (a node of a cluster down must not keep a queue from connecting).
        refusals = 0

        async def report(error: Exception) -> None:
            nonlocal refusals
            if not first_error.done():
                refusals += 1
                if refusals >= len(self.servers):
                    # Raised to the caller, which reports it (and retries): logged here as
                    # well, each refused connection made two lines
                    # (tests/cli/test_logs_nats_down.py).
                    first_error.set_result(error)
                return
            _log.warning("NATS at %s: %s %s", _redacted(self.url), type(error).__name__, error)

        async def disconnected() -> None:
            # Fail the publishes waiting for acks now rather than at their timeout; if the
            # server did store them, publishing them again is de-duplicated.
            for ack in self._unacked:
                if not ack.done():
                    ack.set_exception(ConnectionError("the connection to the server was lost"))

        # In a context of its own: the client's tasks (reading, pinging, reconnecting) outlive
        # whoever opened the queue, an HTTP request perhaps, and would log under its request id.
        connecting = asyncio.get_running_loop().create_task(
            client.connect(
                self.servers,
                error_cb=report,
                disconnected_cb=disconnected,
                connect_timeout=max(1, round(self.timeout)),
                reconnect_time_wait=_RECONNECT_WAIT,
                max_reconnect_attempts=-1,
            ),
            context=contextvars.Context(),
        )
        either: set[asyncio.Future[Any]] = {connecting, first_error}
        try:
            await asyncio.wait(either, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gave_up = not connecting.done()
            if gave_up:
                connecting.cancel()
                await asyncio.wait({connecting})
        if gave_up:
            raise first_error.result() if first_error.done() else TimeoutError("no answer")
        first_error.cancel()
        connecting.result()

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = api.StreamConfig(
            name=self.stream,
            subjects=[self.subject(p) for p in range(self.partitions)],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=DUPLICATE_WINDOW,
            num_replicas=self.replicas or 1,
        )
        try:
            found = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            try:
                await self._add_stream(js, config)
                self.stream_replicas = config.num_replicas or 1
                return
            except nats.js.errors.APIError as error:
                # A race, overlapping subjects, replicas asked of a server outside a cluster.
                if not isinstance(error, nats.js.errors.BadRequestError) and (
                    error.err_code != NOT_CLUSTERED
                ):
                    raise
                try:
                    found = await js.stream_info(self.stream)
                except nats.js.errors.NotFoundError:
                    raise self._mismatch(f"cannot be created: {error.description}") from error
        self._check_stream(found.config)
        await self._rescale(js, found)

    async def _rescale(self, js: JetStreamContext, found: api.StreamInfo) -> None:
        """Give the stream the replica count asked for, if one was (a cluster can change it)."""
        have = found.config.num_replicas or 1
        if self.replicas is not None and self.replicas > 1 and found.cluster is None:
            # A server outside a cluster accepts a stream update to three replicas and then
            # reports three in the stream's configuration, while it keeps the one copy it has.
            raise self._mismatch(
                f"cannot have {self.replicas} replicas: the server is not part of a cluster"
            )
        if self.replicas is None or have == self.replicas:
            self.stream_replicas = have
            return
        try:
            await js.update_stream(dataclasses.replace(found.config, num_replicas=self.replicas))
        except (nats.js.errors.BadRequestError, nats.js.errors.ServerError) as error:
            raise self._mismatch(
                f"has {have} replicas and cannot have {self.replicas}: {error.description}"
            ) from error
        _log.warning("JetStream stream %s: %d replicas, now %d", self.stream, have, self.replicas)
        self.stream_replicas = self.replicas

    async def _add_stream(self, js: JetStreamContext, config: api.StreamConfig) -> None:
        """Create the stream, again if the server lost the race for its storage directory.

        nats-server 2.9 removes an account's store directory with its last stream; a stream
        created at that moment fails with "error creating store for stream" (10049). That
        happens when deployments share a server and one deletes its stream as another starts
        (tests/messaging/test_nats_failures.py churns one to show it); trying again succeeds.
        """
        for attempt in range(1, STORE_RACE_ATTEMPTS + 1):
            try:
                await js.add_stream(config)
                return
            except nats.js.errors.ServerError as error:
                if error.err_code != STORE_RACE or attempt == STORE_RACE_ATTEMPTS:
                    raise
                self.store_races += 1
                await asyncio.sleep(0.01 * attempt)

    def _check_stream(self, found: api.StreamConfig) -> None:
        expected = {self.subject(p) for p in range(self.partitions)}
        if set(found.subjects or ()) != expected:
            raise self._mismatch(
                f"has subjects {sorted(found.subjects or ())}, this queue needs "
                f"{self.partitions} partitions {self.subject_prefix}.0..{self.partitions - 1}"
            )
        if found.storage != api.StorageType.FILE:
            raise self._mismatch(f"uses {found.storage} storage, not file storage")
        if found.duplicate_window < MIN_DUPLICATE_WINDOW:
            raise self._mismatch(
                f"de-duplicates over {found.duplicate_window} s, less than {MIN_DUPLICATE_WINDOW} s"
            )

    def _mismatch(self, what: str) -> NatsStreamMismatchError:
        return NatsStreamMismatchError(
            f"JetStream stream {self.stream!r} at {_redacted(self.url)} {what}"
        )


def _redacted(url: str) -> str:
    """``url`` (one server or a comma-separated list) without passwords, for messages and logs."""
    return ",".join(_redacted_server(server) for server in url.split(","))


def _redacted_server(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
