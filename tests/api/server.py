"""A live `aq serve` (role all) inside the test's event loop, and an HTTP client for it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec

from adventure_quest.bootstrap.serve import serve
from adventure_quest.config import Settings
from tests.services import free_port


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "port": free_port(),
        "admin_token": "admin-secret",
        "tick_seconds": 3600.0,
        **overrides,
    }
    return Settings(**values).check()


@contextlib.asynccontextmanager
async def live(
    settings: Settings, role: str = "all", *, socket: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    """Serve ``settings`` until the block ends; yields a client of the server.

    By default the client talks to the application in process (httpx's ASGI transport: the
    fast lanes and the Litestar application, no socket). ``socket=True``: uvicorn listens on
    ``settings.port`` and the client connects to it, for the tests that need that: a streamed
    answer (the feed) is waited for whole in process, a body nested past the recursion limit is
    decoded on the client's own call stack, and the load generator and ``aq`` connect over TCP.
    """
    started, stop = asyncio.Event(), asyncio.Event()
    apps: list[Any] = []
    server = asyncio.create_task(
        serve(
            settings, role, started=started, stop=stop, in_process=None if socket else apps.append
        )
    )
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait([server, waiter], return_when=asyncio.FIRST_COMPLETED)
    if server.done():
        waiter.cancel()
        server.result()
    base = f"http://{settings.host}:{settings.port}"
    transport = httpx.ASGITransport(app=apps[0]) if apps else None
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10, transport=transport) as client:
            yield client
    finally:
        stop.set()
        await server


async def create(client: httpx.AsyncClient, name: str) -> tuple[str, str, dict[str, Any]]:
    """A new character: (player id, token, the whole answer)."""
    answer = await client.post("/players", json={"name": name})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body["player"]["player_id"], body["token"], body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


#: Bodies nested past what the JSON decoder takes (about 1,000 levels on CPython 3.11, where
#: msgspec counts against the recursion limit), as arrays and as objects: (name, body).
TOO_DEEP: list[tuple[str, bytes]] = [
    (f"{opening} x {depth:,}", opening.encode() * depth + middle + closing * depth)
    for opening, middle, closing in (("[", b"", b"]"), ('{"a":', b"1", b"}"))
    for depth in (1_000, 3_000, 100_000)
]


def error_code(answer: httpx.Response) -> str:
    """The stable code of an error answer (checking the body's shape on the way)."""
    body = msgspec.json.decode(answer.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"], body
    code: str = body["error"]["code"]
    return code


class Background:
    """``aq serve`` on its own event loop in a thread, for synchronous (hypothesis) tests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = f"http://{settings.host}:{settings.port}"
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            started = asyncio.Event()
            task = asyncio.create_task(serve(self.settings, started=started, stop=self._stop))
            waiter = asyncio.create_task(started.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            self._ready.set()
            await task

        try:
            self._loop.run_until_complete(main())
        except BaseException as error:
            self._error = error
            self._ready.set()
        finally:
            self._loop.close()

    def __enter__(self) -> Background:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)
        if self._error is not None:
            raise self._error
