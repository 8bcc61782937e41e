"""An error nothing mapped is still answered in the error shape, on every lane (issue 12).

A bug (here an exception planted in the game, the history or the cache) used to reach uvicorn
from the fast lanes, which answered a plain-text 500. Every lane now answers JSON: 500
``internal`` with a request id that is also in the header ``x-request-id`` and in the log line of
the error, so an operator can find what a user reports. The tests talk over a real socket: what
a client sees on the wire is what is asserted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from adventure_quest.app.game import Game
from adventure_quest.app.history import History
from adventure_quest.queries.cache import MemoryCache
from tests.api.server import bearer, create, live, settings_for


async def planted(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("planted bug")


def assert_internal(answer: httpx.Response, caplog: pytest.LogCaptureFixture) -> str:
    assert answer.status_code == 500, answer.text
    assert answer.headers["content-type"].startswith("application/json"), answer.text
    error = answer.json()["error"]
    assert error["code"] == "internal"
    rid: str = error["request_id"]
    assert rid
    assert answer.headers["x-request-id"] == rid
    assert rid in error["message"]
    logged = [r for r in caplog.records if rid in r.getMessage()]
    assert logged, "the request id is not in the log"
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None
    assert "planted bug" in str(logged[0].exc_info[1])
    assert "planted bug" not in answer.text  # the details stay in the log
    return rid


async def test_a_bug_in_the_fast_command_lane_answers_json_500_with_a_logged_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with live(settings_for(tmp_path), socket=True) as client:
        me, token, _ = await create(client, "Buggy")
        monkeypatch.setattr(Game, "say", planted)
        said = await client.post(f"/players/{me}/say", json={"text": "hi"}, headers=bearer(token))
        assert_internal(said, caplog)


async def test_a_bug_in_the_fast_read_lane_answers_json_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with live(settings_for(tmp_path), socket=True) as client:
        await create(client, "Buggy")
        monkeypatch.setattr(MemoryCache, "get", planted)
        assert_internal(await client.get("/world"), caplog)


async def test_a_bug_behind_a_route_answers_json_500_and_keeps_a_tame_client_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with live(settings_for(tmp_path), socket=True) as client:
        me, _, _ = await create(client, "Buggy")
        monkeypatch.setattr(History, "version", planted)
        mine = {"x-request-id": "client-42.a:b"}
        answer = await client.get(f"/players/{me}/state", headers=mine)
        assert assert_internal(answer, caplog) == "client-42.a:b"
        # One that would not be safe in a log line or a header is replaced by one of ours.
        wild = {"x-request-id": "x" * 65}
        answer = await client.get(f"/players/{me}/state", headers=wild)
        assert assert_internal(answer, caplog) != "x" * 65


async def test_a_request_that_succeeds_carries_no_request_id(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path), socket=True) as client:
        me, token, _ = await create(client, "Fine")
        said = await client.post(f"/players/{me}/say", json={"text": "hi"}, headers=bearer(token))
        assert said.status_code == 200
        assert "x-request-id" not in said.headers
        assert "request_id" not in said.text
        refused = await client.post(f"/players/{me}/move", json={"direction": "up"})
        assert refused.status_code == 401
        assert "request_id" not in refused.json()["error"]
