"""Queries read a real streaming replica; a query with a consistency token the replica has not
reached waits for it, then falls back to the primary (and says so in /metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.api.server import bearer, create, live, settings_for
from tests.pg_replica import ReplicaPair, replica_pair
from tests.prometheus_text import sample


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    with replica_pair() as started:
        yield started


async def applied_on_primary(url: str, player_id: str, room: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for _ in range(200):
            found = await connection.fetchval(
                "SELECT room FROM player_details WHERE player_id = $1", player_id
            )
            if found == room:
                return
            await asyncio.sleep(0.02)
    finally:
        await connection.close()
    raise AssertionError(f"the projections never moved {player_id} to {room}")


def fallbacks(metrics: str) -> float:
    return sample(metrics, "aq_replica_fallbacks_total")


async def test_reads_go_to_the_replica_and_a_token_falls_back_to_the_primary(
    pair: ReplicaPair, tmp_path: Path
) -> None:
    settings = settings_for(
        tmp_path, read_db_url=pair.primary_url, read_replicas=(pair.replica_url,)
    )

    async with live(settings) as client:
        player_id, token, created = await create(client, "Rhea")
        seen = await client.get(
            f"/players/{player_id}", params={"consistency": created["consistency"]}
        )
        assert seen.status_code == 200, seen.text
        await pair.wait_caught_up()
        await pair.pause_replay()
        try:
            moved = await client.post(
                f"/players/{player_id}/move",
                json={"direction": "north"},
                headers=bearer(token),
            )
            consistency = moved.json()["consistency"]
            await applied_on_primary(pair.primary_url, player_id, "market_street")
            await pair.wait_received()
            # Without a token the query (never asked before, so not cached) reads the
            # replica, which has received the move but not replayed it.
            behind = await client.get("/rooms/market_street")
            assert player_id not in behind.json()["players"]
            before = fallbacks((await client.get("/metrics")).text)
            # With the token: the replica cannot get there, the primary answers.
            fresh = await client.get(f"/players/{player_id}", params={"consistency": consistency})
            assert fresh.status_code == 200, fresh.text
            assert fresh.json()["room"] == "market_street"
            assert fallbacks((await client.get("/metrics")).text) == before + 1
        finally:
            await pair.resume_replay()
        await pair.wait_caught_up()
        again = await client.post(
            f"/players/{player_id}/move", json={"direction": "south"}, headers=bearer(token)
        )
        before = fallbacks((await client.get("/metrics")).text)
        replica_answer = await client.get(
            "/rooms/village_square", params={"consistency": again.json()["consistency"]}
        )
        assert player_id in replica_answer.json()["players"]
        assert fallbacks((await client.get("/metrics")).text) == before  # the replica did
