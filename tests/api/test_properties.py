"""Invariants of the HTTP API as properties: nobody acts for someone else (8), bad input writes
nothing (7), and an answer is never older than the consistency token asked for."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.server import Background, settings_for

_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir: Path = tmp_path_factory.mktemp("api-properties")
    with (
        Background(settings_for(data_dir)) as background,
        httpx.Client(base_url=background.url, timeout=10) as client,
    ):
        yield client


def character(client: httpx.Client) -> tuple[str, str]:
    answer = client.post("/players", json={"name": f"Prop{next(_names)}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["player"]["player_id"], answer.json()["token"]


def log_head(client: httpx.Client) -> int:
    status = client.get("/admin/status", headers={"Authorization": "Bearer admin-secret"})
    return sum(relay["head"] for relay in status.json()["relays"])


COMMANDS = [
    ("move", {"direction": "north"}),
    ("take", {"item": "torch"}),
    ("drop", {"item": "torch"}),
    ("say", {"text": "hello"}),
    ("attack", {"target": "rat"}),
    ("use", {"item": "bread"}),
    ("respawn", None),
]
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    target=st.one_of(st.uuids().map(str), st.just("victim")),
    token=st.one_of(
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80),
        st.just("thief"),
        st.just(""),
    ),
    command=st.sampled_from(COMMANDS),
)
def test_no_token_acts_for_a_character_it_was_not_issued_for(
    server: httpx.Client, target: str, token: str, command: tuple[str, object]
) -> None:
    victim_id, _ = character(server)
    _, thief_token = character(server)
    player_id = victim_id if target == "victim" else target
    secret = thief_token if token == "thief" else token
    before = log_head(server)
    name, body = command
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    answer = server.post(f"/players/{player_id}/{name}", json=body, headers=headers)
    assert answer.status_code in (401, 403), answer.text
    assert answer.json()["error"]["code"] in ("unauthenticated", "forbidden")
    assert log_head(server) == before


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=3),
    ),
    command=st.sampled_from([c for c, _ in COMMANDS if c != "respawn"]),
)
def test_malformed_command_bodies_are_refused_and_write_nothing(
    server: httpx.Client, body: bytes | dict[str, object], command: str
) -> None:
    player_id, token = character(server)
    before = log_head(server)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if isinstance(body, bytes):
        answer = server.post(f"/players/{player_id}/{command}", content=body, headers=headers)
    else:
        answer = server.post(f"/players/{player_id}/{command}", json=body, headers=headers)
    valid_fields = {"move": "direction", "take": "item", "drop": "item", "use": "item"}
    if answer.status_code < 400:  # only a well-formed body may get through
        assert isinstance(body, dict)
        assert set(body) == {valid_fields.get(command, {"say": "text"}.get(command, "target"))}
        return
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"error"}
    assert log_head(server) == before


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.sampled_from(["north", "south", "east", "west", "say", "take", "drop"]),
        min_size=1,
        max_size=8,
    )
)
def test_a_query_with_a_token_is_never_older_than_the_command(
    server: httpx.Client, steps: list[str]
) -> None:
    player_id, token = character(server)
    headers = {"Authorization": f"Bearer {token}"}
    for step in steps:
        if step in ("say",):
            answer = server.post(f"/players/{player_id}/say", json={"text": "hi"}, headers=headers)
        elif step in ("take", "drop"):
            answer = server.post(
                f"/players/{player_id}/{step}", json={"item": "torch"}, headers=headers
            )
        else:
            answer = server.post(
                f"/players/{player_id}/move", json={"direction": step}, headers=headers
            )
        if answer.status_code != 200:
            assert answer.status_code == 409  # a game rule said no: nothing to read back
            continue
        written = answer.json()
        consistency = written["consistency"]
        seen = server.get(f"/players/{player_id}", params={"consistency": consistency})
        assert seen.status_code == 200, seen.text
        details = seen.json()
        assert details["room"] == written["player"]["room"]
        assert sorted(details["inventory"]) == sorted(
            i["item_key"] for i in written["player"]["inventory"]
        )
        room = server.get(f"/rooms/{details['room']}", params={"consistency": consistency}).json()
        assert player_id in room["players"]


def test_a_character_id_that_was_never_created_is_refused_like_a_wrong_token(
    server: httpx.Client,
) -> None:
    _, token = character(server)
    answer = server.post(
        f"/players/{uuid.uuid4()}/move",
        json={"direction": "north"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "forbidden")
