"""The fast lane for cached reads answers exactly what the full path answers."""

from __future__ import annotations

from pathlib import Path

from tests.api.server import bearer, create, live, settings_for
from tests.prometheus_text import sample


def hits(metrics: str) -> float:
    return sample(metrics, "aq_cache_hits_total")


async def test_a_cached_answer_is_the_same_through_either_lane_and_counts_as_a_hit(
    tmp_path: Path,
) -> None:
    # Over a socket: in process the reads come so soon after the command that the invalidation
    # of its batch, which runs after the batch committed, can still drop an entry the full path
    # has just cached (3 hits, not 4).
    async with live(settings_for(tmp_path), socket=True) as client:
        player_id, token, created = await create(client, "Quill")
        token_query = {"consistency": created["consistency"]}
        paths = [
            f"/players/{player_id}",
            f"/players/{player_id}/achievements",
            "/rooms/village_square",
            "/world",
        ]
        full = [await client.get(p, params=token_query) for p in paths]  # the full path
        assert [a.status_code for a in full] == [200] * 4
        before = hits((await client.get("/metrics")).text)
        fast = [await client.get(p) for p in paths]  # no query: cached, the fast lane
        assert [a.content for a in fast] == [a.content for a in full]
        assert all(a.headers["content-type"] == "application/json" for a in fast)
        assert hits((await client.get("/metrics")).text) == before + 4
        # A change invalidates: the fast lane then misses and the full path answers anew.
        moved = await client.post(
            f"/players/{player_id}/move", json={"direction": "north"}, headers=bearer(token)
        )
        fresh = await client.get(
            f"/players/{player_id}", params={"consistency": moved.json()["consistency"]}
        )
        assert fresh.json()["room"] == "market_street"
        assert (await client.get(f"/players/{player_id}")).json()["room"] == "market_street"
        missing = await client.get("/rooms/nowhere")
        assert missing.json()["error"]["code"] == "room_not_found"
