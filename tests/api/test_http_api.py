"""The HTTP API end to end on the embedded default: commands, queries, errors, admin, metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adventure_quest.api.server import CannotListenError
from adventure_quest.bootstrap.serve import serve
from adventure_quest.store.urls import open_event_store
from tests.api.server import TOO_DEEP, bearer, create, error_code, live, settings_for
from tests.prometheus_text import sample


async def head_of(settings_dir: Path) -> int:
    store = open_event_store(f"sqlite:///{settings_dir / 'events.sqlite'}")
    try:
        return sum([await log.head() for log in store.logs()])
    finally:
        await store.close()


async def test_a_command_answer_carries_a_token_that_reads_your_own_write(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        player_id, token, created = await create(client, "Alice")
        assert created["token"].startswith("aq_")
        assert created["messages"] == ["Welcome, Alice. Your adventure begins."]
        moved = await client.post(
            f"/players/{player_id}/move", json={"direction": "north"}, headers=bearer(token)
        )
        assert moved.status_code == 200, moved.text
        consistency = moved.json()["consistency"]
        assert moved.headers["AQ-Consistency"] == consistency
        details = await client.get(f"/players/{player_id}", params={"consistency": consistency})
        assert details.status_code == 200
        assert details.json()["room"] == "market_street"
        room = await client.get("/rooms/market_street", headers={"AQ-Consistency": consistency})
        assert player_id in room.json()["players"]
        square = await client.get("/rooms/village_square", params={"consistency": consistency})
        assert player_id not in square.json()["players"]


async def test_a_room_lists_its_characters_a_page_at_a_time_and_counts_them(
    tmp_path: Path,
) -> None:
    async with live(settings_for(tmp_path)) as client:
        here = {}
        for name in ("Ava", "Ben", "Cal", "Dot", "Eli", "Fox", "Gus"):
            player_id, token, _ = await create(client, name)
            here[player_id] = token
        leaver = sorted(here)[2]
        moved = await client.post(
            f"/players/{leaver}/move", json={"direction": "north"}, headers=bearer(here[leaver])
        )
        token = moved.json()["consistency"]
        stayed = sorted(set(here) - {leaver})
        seen: list[str] = []
        after = ""
        while True:
            page = await client.get(
                "/rooms/village_square",
                params={"limit": 2, "after": after, "consistency": token},
            )
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["present"] == len(stayed)
            assert len(body["players"]) <= 2
            seen += list(body["players"])
            if body["next"] is None:
                break
            assert body["next"] == list(body["players"])[-1]
            after = body["next"]
        assert seen == stayed  # each once, in id order, the one who left not among them
        whole = (await client.get("/rooms/village_square")).json()  # the cached first page
        assert (list(whole["players"]), whole["present"], whole["next"]) == (stayed, 6, None)
        assert whole["players"][stayed[0]]["name"] in {"Ava", "Ben", "Cal", "Dot", "Eli", "Fox"}
        first = (await client.get("/rooms/village_square", params={"limit": 4})).json()
        assert (list(first["players"]), first["next"]) == (stayed[:4], stayed[3])
        north = (await client.get("/rooms/market_street", params={"consistency": token})).json()
        assert (list(north["players"]), north["present"], north["next"]) == ([leaver], 1, None)
        world = (await client.get("/world", params={"consistency": token})).json()
        assert world["players_per_room"] == {"market_street": 1, "village_square": 6}
        counted = sum(world["events_per_minute"].values())  # the world clock may tick on
        assert len(here) + 1 <= counted <= await head_of(tmp_path)


async def test_every_rejected_request_has_the_error_shape_and_writes_nothing(
    tmp_path: Path,
) -> None:
    # A limit above the deepest body below, so that it reaches the decoder.
    async with live(settings_for(tmp_path, max_body_bytes=1 << 20)) as client:
        player_id, token, _ = await create(client, "Bob")
        await asyncio.sleep(0.2)
        before = await head_of(tmp_path)
        move = f"/players/{player_id}/move"
        cases = [
            (client.post(move, json={"direction": "north"}), 401, "unauthenticated"),
            (
                client.post(move, json={"direction": "north"}, headers=bearer("aq_wrong")),
                403,
                "forbidden",
            ),
            (
                client.post(move, content=b'{"direction": ', headers=bearer(token)),
                400,
                "malformed_json",
            ),
            (
                client.post(move, json={"direction": 5}, headers=bearer(token)),
                422,
                "invalid_request",
            ),
            (
                client.post(move, json={"direction": "n", "x": 1}, headers=bearer(token)),
                422,
                "invalid_request",
            ),
            (
                client.post(move, json={"direction": "x" * (1 << 20)}, headers=bearer(token)),
                413,
                "body_too_large",
            ),
            (
                client.post(move, json={"direction": "up"}, headers=bearer(token)),
                409,
                "no_exit",
            ),
            (
                client.post(
                    f"/players/{player_id}/say", json={"text": "\x00"}, headers=bearer(token)
                ),
                422,
                "invalid_text",
            ),
            (
                client.post(f"/players/{player_id}/respawn", headers=bearer(token)),
                409,
                "not_dead",
            ),
            (client.post("/players", json={"name": "bob"}), 409, "name_taken"),
            (client.post("/players", json={"name": "  "}), 422, "invalid_name"),
            (client.get("/rooms/nowhere"), 404, "room_not_found"),
            (client.get("/players/not-an-id"), 422, "invalid_request"),
            (client.get("/no/such/route"), 404, "not_found"),
            (client.delete("/players"), 405, "method_not_allowed"),
            (
                client.get(f"/players/{player_id}", params={"consistency": "garbage"}),
                422,
                "invalid_consistency_token",
            ),
            # Query parameters are never decoded as JSON: nesting in them is just text.
            (
                client.get(f"/players/{player_id}", params={"consistency": "[" * 3000}),
                422,
                "invalid_consistency_token",
            ),
            (client.get("/leaderboard", params={"limit": "[" * 3000}), 422, "invalid_request"),
            (client.get("/rooms/village_square", params={"limit": 0}), 422, "invalid_request"),
            (client.get("/rooms/village_square", params={"limit": 101}), 422, "invalid_request"),
            (
                client.get("/rooms/village_square", params={"after": "not-an-id"}),
                422,
                "invalid_request",
            ),
        ]
        # Nesting past the decoder's depth is malformed JSON on every route with a body,
        # with a token or without (it was a 500: issue 10); respawn reads no body.
        for _, deep in TOO_DEEP:
            cases.append((client.post("/players", content=deep), 400, "malformed_json"))
            cases.append((client.post(move, content=deep), 400, "malformed_json"))
            for verb in ("move", "take", "drop", "use", "attack", "say"):
                command = client.post(
                    f"/players/{player_id}/{verb}", content=deep, headers=bearer(token)
                )
                cases.append((command, 400, "malformed_json"))
            respawn = f"/players/{player_id}/respawn"
            cases.append(
                (client.post(respawn, content=deep, headers=bearer(token)), 409, "not_dead")
            )
        for request, status, code in cases:
            answer = await request
            assert (answer.status_code, error_code(answer)) == (status, code), answer.text
        assert await head_of(tmp_path) == before


async def test_a_token_the_read_models_cannot_reach_in_time_answers_stale(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        player_id, _, _ = await create(client, "Cara")
        loop = asyncio.get_running_loop()
        began = loop.time()
        answer = await client.get(
            f"/players/{player_id}", params={"consistency": "0.0:999999", "wait_ms": 300}
        )
        waited = loop.time() - began
        assert answer.status_code == 412
        assert error_code(answer) == "stale"
        assert 0.3 <= waited < 3.0


async def test_admin_endpoints_need_the_admin_token(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        _, token, _ = await create(client, "Dan")
        for headers, status in (({}, 401), (bearer(token), 403), (bearer("nope"), 403)):
            answer = await client.get("/admin/status", headers=headers)
            assert answer.status_code == status
        status_answer = await client.get("/admin/status", headers=bearer("admin-secret"))
        assert status_answer.status_code == 200
        assert status_answer.json()["relays"][0]["state"] in ("ok", "lagging")
        started = await client.post(
            "/admin/projections/player_details/rebuild", headers=bearer("admin-secret")
        )
        assert started.status_code == 202, started.text
        for _ in range(100):
            job = await client.get("/admin/rebuilds/player_details", headers=bearer("admin-secret"))
            if job.json()["state"] != "running":
                break
            await asyncio.sleep(0.05)
        assert job.json()["state"] == "done", job.text
        unknown = await client.post(
            "/admin/projections/nope/rebuild", headers=bearer("admin-secret")
        )
        assert (unknown.status_code, error_code(unknown)) == (404, "projection_not_found")


async def test_history_pages_and_time_travel(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        player_id, token, _ = await create(client, "Eve")
        for direction in ("north", "south", "north"):
            await client.post(
                f"/players/{player_id}/move",
                json={"direction": direction},
                headers=bearer(token),
            )
        first = (await client.get(f"/players/{player_id}/events", params={"limit": 2})).json()
        assert [e["type"] for e in first["events"]] == ["PlayerCreated", "TokenIssued"]
        assert first["events"][1]["data"] == {}  # the hash is not shown
        rest = (
            await client.get(f"/players/{player_id}/events", params={"after": first["next_after"]})
        ).json()
        assert [e["version"] for e in rest["events"]] == [3, 4, 5]
        assert rest["next_after"] is None
        past = (await client.get(f"/players/{player_id}/state", params={"version": 3})).json()
        assert (past["version"], past["state"]["room"]) == (3, "market_street")
        created_ms = int(first["events"][0]["recorded_at"] * 1000) + 1
        at_start = (
            await client.get(f"/players/{player_id}/state", params={"at_ms": created_ms})
        ).json()
        assert at_start["state"]["room"] == "village_square"


async def test_metrics_health_and_the_openapi_document(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        player_id, _, _ = await create(client, "Fay")
        await client.get(f"/players/{player_id}", params={"wait_ms": 0})
        await client.get("/rooms/village_square")
        await client.get("/rooms/village_square")
        metrics = (await client.get("/metrics")).text
        for name in (
            'aq_command_seconds_bucket{command="create",le="+Inf"} 1',
            "aq_query_seconds_count",
            "aq_cache_hits_total",
            "aq_cache_hit_ratio",
            "aq_relay_lag_events",
            "aq_projection_lag_seconds",
            "aq_dead_letters 0",
            'aq_events_appended_total{kind="events"} 2',
            "aq_feed_subscribers 0",
        ):
            assert name in metrics, name
        rss = sample(metrics, "process_resident_memory_bytes")
        assert 10_000_000 < rss < 2_000_000_000
        assert sample(metrics, "aq_process_peak_resident_memory_bytes") >= rss
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {
            "event_store": "ok",
            "read_database": "ok",
            "cache": "ok",
            "queue": "ok",
        }
        document = (await client.get("/openapi.json")).json()
        assert document["openapi"].startswith("3.1")
        assert "/players/{player_id}/move" in document["paths"]
        page = await client.get("/docs")  # the explorer (tests/api/test_docs*.py render it)
        assert page.status_code == 200
        assert '"url": "/openapi.json"' in page.text


async def test_serve_refuses_an_address_in_use(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with live(settings, socket=True):  # listening on settings.port
        with pytest.raises(CannotListenError, match="cannot listen on"):
            await serve(settings_for(tmp_path / "other", port=settings.port))
