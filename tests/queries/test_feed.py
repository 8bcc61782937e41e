"""Notifications: a character's feed tells what happens in its room, and follows it around."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from tests.api.server import bearer, create, live, settings_for


async def events_of(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) pairs of a Server-Sent Events stream."""
    kind, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "message", ""


async def next_notices(stream: AsyncIterator[tuple[str, Any]], count: int) -> list[tuple[str, Any]]:
    got: list[tuple[str, Any]] = []
    async with asyncio.timeout(5):
        while len(got) < count:
            got.append(await anext(stream))
    return got


async def test_the_feed_tells_arrivals_speech_fights_and_departures_and_follows_its_character(
    tmp_path: Path,
) -> None:
    # Over a socket: the feed is a stream that never ends on its own, which httpx's
    # in-process transport would wait for whole.
    async with live(settings_for(tmp_path), socket=True) as client:
        alice, alice_token, _ = await create(client, "Alice")
        bob, bob_token, _ = await create(client, "Bob")
        async with client.stream(
            "GET", f"/players/{bob}/feed", headers=bearer(bob_token)
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = events_of(response)
            assert await next_notices(stream, 1) == [("welcome", {"room": "village_square"})]

            async def alice_does(command: str, body: dict[str, str]) -> None:
                answer = await client.post(
                    f"/players/{alice}/{command}", json=body, headers=bearer(alice_token)
                )
                assert answer.status_code == 200, answer.text

            await alice_does("say", {"text": "hello Bob"})
            await alice_does("take", {"item": "torch"})
            await alice_does("move", {"direction": "north"})
            seen = await next_notices(stream, 3)
            assert [(kind, data["text"]) for kind, data in seen] == [
                ("speech", 'Alice says: "hello Bob"'),
                ("item", "Alice takes the torch."),
                ("departure", "Alice leaves north."),
            ]
            assert {data["player_id"] for _, data in seen} == {alice}
            # Bob follows; his feed now tells the market street.
            moved = await client.post(
                f"/players/{bob}/move", json={"direction": "north"}, headers=bearer(bob_token)
            )
            assert moved.status_code == 200
            await alice_does("say", {"text": "you came"})
            own_move_then_speech = await next_notices(stream, 3)
            assert [(kind, data["room"]) for kind, data in own_move_then_speech] == [
                ("departure", "village_square"),
                ("arrival", "market_street"),
                ("speech", "market_street"),
            ]
            assert own_move_then_speech[2][1]["text"] == 'Alice says: "you came"'


async def test_the_feed_needs_the_characters_token(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        alice, _, _ = await create(client, "Alice")
        _, bob_token, _ = await create(client, "Bob")
        assert (await client.get(f"/players/{alice}/feed")).status_code == 401
        stolen = await client.get(f"/players/{alice}/feed", headers=bearer(bob_token))
        assert stolen.status_code == 403
