"""The fast lanes' table (api/lanes.py) agrees with the routes the application documents: every
command lane is a POST route taking that body schema, every query lane's path is exactly the
GET route of that query, and nothing else the lanes match is a route."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from adventure_quest.api.lanes import COMMAND_PATH, COMMANDS, QUERIES
from tests.api.server import live, settings_for

EXAMPLE = {"player_id": str(uuid.uuid4()), "room": "village_square"}


async def openapi(tmp_path: Path) -> dict[str, Any]:
    async with live(settings_for(tmp_path), socket=False) as client:  # in process
        answer = await client.get("/openapi.json")
        assert answer.status_code == 200
        document: dict[str, Any] = answer.json()
        return document


def example(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: EXAMPLE.get(m[1], "x"), template)


async def test_every_command_lane_is_a_post_route_with_that_body(tmp_path: Path) -> None:
    paths = (await openapi(tmp_path))["paths"]
    for verb, lane in COMMANDS.items():
        route = paths[f"/players/{{player_id}}/{verb}"]["post"]
        schema = route["requestBody"]["content"]["application/json"]["schema"]
        assert schema["$ref"].rsplit("/", 1)[1] == lane.body.__name__, verb
        assert COMMAND_PATH.match(example(f"/players/{{player_id}}/{verb}"))
    # The lanes take no other POST: /players (create) and respawn (no body) stay with the app.
    posts = [p for p, ops in paths.items() if "post" in ops and COMMAND_PATH.match(example(p))]
    assert sorted(posts) == sorted(f"/players/{{player_id}}/{verb}" for verb in COMMANDS)


async def test_every_query_lane_is_the_get_route_of_its_query(tmp_path: Path) -> None:
    paths = (await openapi(tmp_path))["paths"]
    gets = [p for p, ops in paths.items() if "get" in ops]
    routes = {
        "player": "/players/{player_id}",
        "achievements": "/players/{player_id}/achievements",
        "room": "/rooms/{room}",
        "world": "/world",
    }
    assert set(QUERIES) == set(routes)
    for name, lane in QUERIES.items():
        assert [p for p in gets if lane.path.match(example(p))] == [routes[name]], name
    assert QUERIES["room"].key("hall") == "room:hall"
    assert QUERIES["world"].key() == "world"
