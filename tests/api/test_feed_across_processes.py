"""A character's room feed opened on one API process follows moves made through another.

Seen (issue 12): the feed subscribed from the process's cached character, so a feed opened on
API process B after the character moved through API process A followed the room the character
had left, and heard nothing of the room it was in. The feed now subscribes from the write side's
state (the cached state plus the events after it). Two ``aq serve --role api`` processes share
one PostgreSQL store.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import httpx

from tests.api.test_roles import aq, part, ready
from tests.conftest import run
from tests.postgres import scratch_database
from tests.queries.test_feed import events_of, next_notices
from tests.services import free_port


def test_a_feed_opened_on_one_api_process_follows_a_move_made_through_another(
    tmp_path: Path,
) -> None:
    store = run(scratch_database("feed_store"))
    read = run(scratch_database("feed_read"))
    env = {
        **os.environ,
        "AQ_STORE": store,
        "AQ_READ_DB": read,
        "AQ_QUEUE": f"nats://127.0.0.1:4222/AQFEED{uuid.uuid4().hex[:8].upper()}",
        "AQ_ADMIN_TOKEN": "feed-admin",
        "AQ_DATA_DIR": str(tmp_path),
    }
    upgraded = subprocess.run([aq(), "db", "upgrade"], env=env, capture_output=True, check=False)
    assert upgraded.returncode == 0, upgraded.stderr
    ports = free_port(), free_port()
    first, second = (f"http://127.0.0.1:{port}" for port in ports)
    with (
        part("api", env, tmp_path / "api1.log", "--port", str(ports[0])),
        part("api", env, tmp_path / "api2.log", "--port", str(ports[1])),
    ):
        ready(first)
        ready(second)
        run(_scenario(first, second))


async def _scenario(first: str, second: str) -> None:
    async with httpx.AsyncClient(base_url=first, timeout=10) as one:
        mover = (await one.post("/players", json={"name": "Mover"})).json()
        talker = (await one.post("/players", json={"name": "Talker"})).json()
        me, token = mover["player"]["player_id"], mover["token"]
        auth = {"Authorization": f"Bearer {token}"}
        feed = f"{second}/players/{me}/feed"
        async with httpx.AsyncClient(timeout=10) as two:
            # The second process loads (and caches) the character in the village square.
            async with two.stream("GET", feed, headers=auth) as response:
                assert response.status_code == 200
                welcome = await next_notices(events_of(response), 1)
                assert welcome == [("welcome", {"room": "village_square"})]

            for player in (mover, talker):  # both walk north through the first process
                moved = await one.post(
                    f"/players/{player['player']['player_id']}/move",
                    json={"direction": "north"},
                    headers={"Authorization": f"Bearer {player['token']}"},
                )
                assert moved.status_code == 200, moved.text

            async with two.stream("GET", feed, headers=auth) as response:
                stream = events_of(response)
                assert await next_notices(stream, 1) == [("welcome", {"room": "market_street"})]
                await asyncio.sleep(0.3)  # the feed's tail has started from the log's head
                said = await one.post(
                    f"/players/{talker['player']['player_id']}/say",
                    json={"text": "over here"},
                    headers={"Authorization": f"Bearer {talker['token']}"},
                )
                assert said.status_code == 200, said.text
                [(kind, notice)] = await next_notices(stream, 1)
                assert kind == "speech", notice
                assert notice["room"] == "market_street"
                assert "over here" in notice["text"]
