"""Every route, on every lane, with each backing service gone: an answer in the error shape.

For each of Redis (the cache), PostgreSQL (event store and read database) and NATS (the
queue), a server of the test's own is killed under a live API (over a socket: what a client
sees on the wire), then every route is asked, through the fast lanes where they apply and
through the application: no answer is a 500, every JSON error has a stable code, and a
backing-service failure is ``503 unavailable``. (POST /admin/projections/{name}/rebuild is left
out: it starts background work that outlives the request.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from adventure_quest.store.migrate import upgrade_store
from tests.api.server import bearer, create, live, settings_for
from tests.pg_replica import lone_server
from tests.services import private_nats, private_redis

ADMIN = {"Authorization": "Bearer admin-secret"}


def requests(me: str, token: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx arguments): every route, fast lanes included."""
    mine = bearer(token)
    cmd = {"headers": mine}
    return [
        ("POST", "/players", {"json": {"name": "Another"}}),
        *(
            ("POST", f"/players/{me}/{verb}", {"json": body, **cmd})
            for verb, body in (
                ("move", {"direction": "north"}),
                ("take", {"item": "nothing"}),
                ("drop", {"item": "nothing"}),
                ("use", {"item": "nothing"}),
                ("attack", {"target": "nobody"}),
                ("say", {"text": "hello"}),
            )
        ),
        ("POST", f"/players/{me}/say?via=app", {"json": {"text": "app lane"}, **cmd}),
        ("POST", f"/players/{me}/respawn", cmd),
        ("GET", f"/players/{me}", {}),  # the fast read lane
        ("GET", f"/players/{me}?consistency=0.0:1", {}),  # the application
        ("GET", f"/players/{me}/achievements", {}),
        ("GET", "/rooms/village_square", {}),
        ("GET", "/rooms/village_square?max_wait_ms=10", {}),
        ("GET", "/world", {}),
        ("GET", "/leaderboard", {}),
        ("GET", f"/players/{me}/events", {}),
        ("GET", f"/players/{me}/state", {}),
        ("GET", f"/players/{me}/feed", cmd),
        ("GET", "/admin/status", {"headers": ADMIN}),
        ("GET", "/admin/dead-letters", {"headers": ADMIN}),
        ("POST", "/admin/dead-letters/rooms/retry", {"headers": ADMIN}),
        ("POST", "/admin/dead-letters/rooms/skip", {"headers": ADMIN}),
        ("GET", "/admin/rebuilds/rooms", {"headers": ADMIN}),
        ("GET", "/metrics", {}),
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/docs", {}),
        ("GET", "/nowhere", {}),
    ]


async def ask(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The answer's status, headers and (for anything but a stream) body."""
    async with client.stream(method, path, **kwargs) as answer:
        if not answer.headers.get("content-type", "").startswith("text/event-stream"):
            await answer.aread()
        return answer


@contextmanager
def redis_gone(tmp_path: Path) -> Iterator[tuple[dict[str, Any], Callable[[], None]]]:
    with private_redis(tmp_path) as server:
        yield {"cache_url": server.url}, server.kill


@contextmanager
def postgres_gone(tmp_path: Path) -> Iterator[tuple[dict[str, Any], Callable[[], None]]]:
    with lone_server() as server:
        url = server.url("postgres")
        asyncio.run(upgrade_store(url))
        yield {"store_url": url, "read_db_url": url, "aggregate_cache_size": 0}, server.stop


@contextmanager
def nats_gone(tmp_path: Path) -> Iterator[tuple[dict[str, Any], Callable[[], None]]]:
    with private_nats(tmp_path) as server:
        queue = f"{server.url}/AQMATRIX{uuid.uuid4().hex[:6].upper()}"
        yield {"queue_url": queue, "partitions": 2}, server.stop


SERVICES: dict[str, Callable[[Path], AbstractContextManager[Any]]] = {
    "redis": redis_gone,
    "postgres": postgres_gone,
    "nats": nats_gone,
}


@asynccontextmanager
async def serving(tmp_path: Path, overrides: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async with live(settings_for(tmp_path / "data", **overrides), socket=True) as client:
        yield client


@pytest.mark.parametrize("service", list(SERVICES))
def test_every_route_answers_in_the_error_shape_with_a_service_gone(
    tmp_path: Path, service: str
) -> None:
    with SERVICES[service](tmp_path) as (overrides, take_away):
        asyncio.run(_scenario(tmp_path, overrides, take_away))


async def _scenario(
    tmp_path: Path, overrides: dict[str, Any], take_away: Callable[[], None]
) -> None:
    async with serving(tmp_path, overrides) as client:
        me, token, _ = await create(client, "Stranded")
        assert (await client.get("/world")).status_code == 200  # cached, where a cache is
        await asyncio.to_thread(take_away)
        unavailable = 0
        for method, path, kwargs in requests(me, token):
            answer = await ask(client, method, path, **kwargs)
            where = f"{method} {path}: {answer.status_code}"
            assert answer.status_code != 500, where
            kind = answer.headers.get("content-type", "")
            if answer.status_code >= 400 and path != "/readyz":  # readiness has its own body
                assert kind.startswith("application/json"), where
                error = answer.json()["error"]
                assert error["code"], where
                if answer.status_code == 503:
                    assert error["code"] == "unavailable", where
                    unavailable += 1
        if "cache_url" in overrides:  # queries go on past a cache that is gone
            assert (await client.get("/rooms/village_square")).status_code == 200
            assert (await client.get(f"/players/{me}")).status_code == 200
        else:
            assert unavailable, "the outage was seen by some route"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["failing"]
