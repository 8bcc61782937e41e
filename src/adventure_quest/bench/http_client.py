"""The load generator's HTTP/1.1 client, and the shapes of the answers it reads.

A minimal keep-alive protocol (one connection per player, one request at a time, bodies framed
by Content-Length) so that the generator costs little CPU next to the server it measures on the
same machine. ``Client`` builds the request bytes and opens ``Connection``s; a watchdog fails
requests that get no answer in ``TIMEOUT_S``. The answer structs decode only the fields the
simulated players use.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

import msgspec

TIMEOUT_S = 10.0


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client understands."""


class Item(msgspec.Struct):
    name: str


class Character(msgspec.Struct):
    player_id: str
    room: str
    alive: bool
    inventory: list[Item]


class CommandAnswer(msgspec.Struct):
    player: Character
    consistency: str


class Created(CommandAnswer):
    token: str


class Monster(msgspec.Struct):
    name: str


class RoomAnswer(msgspec.Struct):
    exits: dict[str, str]
    items: list[str]
    monsters: list[Monster]


class ErrorDetail(msgspec.Struct):
    code: str


class ErrorAnswer(msgspec.Struct):
    error: ErrorDetail


# Answer bodies to their structs; msgspec.DecodeError when a body is not as documented.
decode_command_answer = msgspec.json.Decoder(CommandAnswer).decode
decode_created = msgspec.json.Decoder(Created).decode
decode_room_answer = msgspec.json.Decoder(RoomAnswer).decode
decode_error_answer = msgspec.json.Decoder(ErrorAnswer).decode


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending = b""
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.sent_at = 0.0

    @property
    def closed(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}" if exc else "connection closed"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
        self._pending = data
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return
        # Header names come lower-case from uvicorn; lower-casing is the slow fallback.
        at = data.find(b"\r\ncontent-length:", 0, end)
        if at < 0:
            at = data[:end].lower().find(b"\r\ncontent-length:")
        try:
            if at < 0:
                raise ProtocolError(f"an answer without content-length: {data[:end]!r}")
            total = end + 4 + int(data[at + 17 : data.find(b"\r\n", at + 2)])
            if len(data) < total:
                return
            status = int(data[9:12])
        except (ValueError, ProtocolError) as error:
            self._fail(error if isinstance(error, ProtocolError) else ProtocolError(str(error)))
            self.close()
            return
        self._pending = data[total:]
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, data[end + 4 : total]))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one whole request; its status and body."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError("connection closed")
        waiter: asyncio.Future[tuple[int, bytes]] = self._loop.create_future()
        self._waiter = waiter
        self.sent_at = time.monotonic()
        self._transport.write(data)
        return await waiter

    def overdue(self, now: float) -> bool:
        return self._waiter is not None and now - self.sent_at > TIMEOUT_S

    def expire(self) -> None:
        self._fail(TimeoutError(f"no answer in {TIMEOUT_S:g} s"))
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)


class Client:
    """Connections to one server, and a watchdog failing requests that get no answer in time."""

    def __init__(self, host: str, port: int, prefix: str) -> None:
        """``prefix``: the path every request's path is appended to, without a trailing "/"."""
        self.host = host
        self.port = port
        self.prefix = prefix
        self._open: set[Connection] = set()
        self._gets: dict[str, bytes] = {}

    async def connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, connection = await asyncio.wait_for(
            loop.create_connection(lambda: Connection(loop), self.host, self.port), TIMEOUT_S
        )
        self._open.add(connection)
        return connection

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for connection in list(self._open):
                if connection.lost.done():
                    self._open.discard(connection)
                elif connection.overdue(now):
                    connection.expire()

    async def close(self) -> None:
        for connection in self._open:
            connection.close()
        if self._open:
            await asyncio.wait([c.lost for c in self._open], timeout=TIMEOUT_S)
        self._open.clear()

    def get(self, path: str) -> bytes:
        request = self._gets.get(path)
        if request is None:
            request = b"GET %s%s HTTP/1.1\r\nHost: %s\r\n\r\n" % (
                self.prefix.encode(),
                path.encode(),
                self.host.encode(),
            )
            if len(self._gets) < 10_000:  # room, character and leaderboard reads repeat
                self._gets[path] = request
        return request

    def post(self, path: str, body: bytes, auth: bytes = b"") -> bytes:
        return (
            b"POST %s%s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
        ) % (self.prefix.encode(), path.encode(), self.host.encode(), auth, len(body), body)
