"""``aq loadtest`` against a live server: players command and query, and nothing fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec

from adventure_quest.bench import loadtest
from adventure_quest.config import parse_rate_limits
from tests.api.server import live, settings_for

REQUIRED = {
    "commands_per_s", "queries_per_s", "command_p50_ms", "command_p99_ms", "query_p50_ms",
    "query_p99_ms", "lag_p50_ms", "lag_p99_ms", "errors", "rejections", "commands", "queries",
    "players", "duration_s", "error_samples",
}  # fmt: skip


async def test_ten_players_for_two_seconds_command_and_query_without_errors(
    tmp_path: Path,
) -> None:
    # Fifty characters from one address and about as many says a second as a character can
    # send: a benchmark's load, well over the default rate limits, which are off for it.
    settings = settings_for(tmp_path, rate_limits={})
    async with live(settings, socket=True):  # the load generator connects over TCP
        url = f"http://{settings.host}:{settings.port}"
        result = await loadtest.run(url, players=10, duration_s=2.0, seed=7, characters=40)
    assert not REQUIRED - set(result), REQUIRED - set(result)
    assert result["errors"] == 0, result["error_samples"]
    assert result["players"] == 10
    assert result["commands_per_s"] > 0
    assert result["queries_per_s"] > 0
    assert result["lag_samples"] > 0
    assert 0 < result["lag_p50_ms"] <= result["lag_p99_ms"]
    assert 0 < result["command_p50_ms"] <= result["command_p99_ms"]
    assert result["characters"] == 40
    assert 20 < result["server_rss_mb"] <= result["server_peak_rss_mb"] < 2000


async def test_commands_over_a_rate_limit_are_counted_as_refusals_not_errors(
    tmp_path: Path,
) -> None:
    limits = parse_rate_limits("say=1/h:1,create=off")  # one say an hour per character
    settings = settings_for(tmp_path, rate_limits=limits)
    async with live(settings, socket=True):
        url = f"http://{settings.host}:{settings.port}"
        result = await loadtest.run(url, players=4, duration_s=2.0, seed=7)
    assert result["errors"] == 0, result["error_samples"]
    assert result["rejection_codes"].get("rate_limited", 0) > 0, result["rejection_codes"]


async def test_without_read_back_commands_are_not_read_back(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, rate_limits={})
    async with live(settings, socket=True):
        url = f"http://{settings.host}:{settings.port}"
        result = await loadtest.run(
            url, players=4, duration_s=1.5, seed=7, query_ratio=0.0, read_back=False
        )
    assert result["errors"] == 0, result["error_samples"]
    assert result["commands"] > 40  # enough for read-backs, had they been on (every 10th)
    assert result["lag_samples"] == 0


async def test_a_hot_room_run_only_drops_and_takes_in_the_start_room_without_conflicts(
    tmp_path: Path,
) -> None:
    world_file = tmp_path / "hot.json"
    world_file.write_bytes(msgspec.json.encode(loadtest.hot_world(40)))
    settings = settings_for(tmp_path, rate_limits={}, world_path=world_file)
    async with live(settings, socket=True) as client:
        url = f"http://{settings.host}:{settings.port}"
        result = await loadtest.run(
            url, players=12, duration_s=2.0, seed=7, query_ratio=0.0, hot_room=True
        )
        await asyncio.sleep(0.5)  # the last hand-overs reach the read models
        world = (await client.get("/world")).json()
        square = (await client.get("/rooms/village_square")).json()
    assert result["errors"] == 0, result["error_samples"]
    assert result["hot_room"] is True
    refused = sum(result["rejection_codes"].values())
    assert result["commands"] - refused > 50  # drops and takes that wrote the room's stream
    carried = sum(p["inventory"].count("torch") for p in square["players"].values())
    assert square["item_keys"].count("torch") + carried == 40  # none lost, none doubled
    assert set(world["players_per_room"]) == {"village_square"}  # nobody moved


async def test_spread_idle_characters_walk_away_from_the_start_room(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, rate_limits={})
    async with live(settings, socket=True) as client:
        url = f"http://{settings.host}:{settings.port}"
        result = await loadtest.run(
            url, players=1, duration_s=0.5, seed=7, characters=60, spread_idle=True
        )
        await asyncio.sleep(0.5)  # the last moves reach the read models
        world = (await client.get("/world")).json()
    assert result["errors"] == 0, result["error_samples"]
    rooms = world["players_per_room"]
    assert sum(rooms.values()) == 61
    assert len(rooms) >= 5  # four random steps each, never back: over the map
    assert rooms.get("village_square", 0) <= 6
    assert max(rooms.values()) <= 30  # no room holds half of them
