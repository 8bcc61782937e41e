"""The fast lane for commands answers as the application does, and leaves it every request it
cannot run whole (bad bodies, missing or wrong tokens, oversized bodies)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from adventure_quest.api import fast_commands
from tests.api.server import TOO_DEEP, bearer, create, error_code, live, settings_for

STEPS: list[tuple[str, dict[str, str]]] = [
    ("say", {"text": "hello"}),
    ("take", {"item": "torch"}),
    ("move", {"direction": "up"}),  # no exit: refused by the game
    ("move", {"direction": "n"}),
    ("drop", {"item": "torch"}),
    ("take", {"item": "anvil"}),  # not here
    ("use", {"item": "torch"}),  # not carried any more
    ("attack", {"target": "dragon"}),  # no such monster here
    ("move", {"direction": "south"}),
]


def without_fresh_ids(value: object) -> object:
    """The answer with its hand-over ids (new UUIDs in every run) blanked."""
    if isinstance(value, dict):
        return {k: "…" if k == "handover_id" else without_fresh_ids(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_fresh_ids(v) for v in value]
    return value


async def play(data_dir: Path, suffix: str) -> list[tuple[int, object]]:
    """The answers to STEPS of a fresh server (``suffix``: a query string, or nothing)."""
    answers: list[tuple[int, object]] = []
    async with live(settings_for(data_dir)) as client:
        me, token, _ = await create(client, "Lane")
        for command, body in STEPS:
            answer = await client.post(
                f"/players/{me}/{command}{suffix}", json=body, headers=bearer(token)
            )
            answers.append((answer.status_code, without_fresh_ids(answer.json())))
            if answer.status_code == 200:
                assert answer.headers["aq-consistency"] == answer.json()["consistency"]
        metrics = (await client.get("/metrics")).text
        assert 'aq_command_seconds_count{command="say"} 1' in metrics
    return answers


async def test_both_lanes_answer_every_command_alike(tmp_path: Path) -> None:
    fast = await play(tmp_path / "fast", "")
    # A query string keeps a request out of the fast lane: the application answers.
    slow = await play(tmp_path / "application", "?lane=application")
    assert fast == slow
    assert [status for status, _ in fast] == [200, 200, 409, 200, 200, 409, 409, 409, 200]


async def test_requests_the_fast_lane_cannot_run_get_the_applications_answers(
    tmp_path: Path,
) -> None:
    # A limit above the deepest body below, so that it reaches the decoders.
    async with live(settings_for(tmp_path, max_body_bytes=1 << 20)) as client:
        me, token, _ = await create(client, "Strict")
        _, other, _ = await create(client, "Other")
        move = f"/players/{me}/move"
        cases = [
            (
                client.post(move, content=b'{"direction": ', headers=bearer(token)),
                400,
                "malformed_json",
            ),
            (
                client.post(move, json={"direction": "north", "x": 1}, headers=bearer(token)),
                422,
                "invalid_request",
            ),
            (
                client.post(move, json={"direction": "sideways"}, headers=bearer(token)),
                422,
                "invalid_request",
            ),
            (client.post(move, json={"direction": "north"}), 401, "unauthenticated"),
            (
                client.post(move, json={"direction": "north"}, headers=bearer(other)),
                403,
                "forbidden",
            ),
            (
                client.post(move, json={"direction": "n" * (1 << 20)}, headers=bearer(token)),
                413,
                "body_too_large",
            ),
        ]
        # Nesting past the decoders' depth: every command, with its character's token (the
        # request the fast lane would run), is malformed JSON (it was a 500: issue 10).
        for _, deep in TOO_DEEP:
            for verb in ("move", "take", "drop", "use", "attack", "say"):
                command = client.post(f"/players/{me}/{verb}", content=deep, headers=bearer(token))
                cases.append((command, 400, "malformed_json"))
        for request, status, code in cases:
            answer = await request
            assert (answer.status_code, error_code(answer)) == (status, code), answer.text
        assert (await client.get(f"/players/{me}/state")).json()["version"] == 2


class LooseSay(msgspec.Struct, frozen=True):
    """Say without ``forbid_unknown_fields``: its decoder skips unknown values, recursing."""

    text: str


async def test_a_body_too_deep_for_the_fast_lanes_decoder_goes_to_the_application(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The strict schemas refuse a nested body before recursing into it; a schema that skipped
    # unknown fields would not, and its RecursionError must not escape the lane (a bare 500).
    monkeypatch.setitem(fast_commands._DECODERS, "say", msgspec.json.Decoder(LooseSay))

    # Over a socket: in process, the application would decode the body on the client's own
    # call stack, and the recursion limit would be reached inside the client instead.
    settings = settings_for(tmp_path, max_body_bytes=1 << 20)
    async with live(settings, socket=True) as client:
        me, token, _ = await create(client, "Deep")
        state = f"/players/{me}/state"
        before = (await client.get(state)).json()["version"]
        for name, deep in TOO_DEEP:
            body = b'{"x":' + deep + b',"text":"hi"}'
            answer = await client.post(f"/players/{me}/say", content=body, headers=bearer(token))
            assert (answer.status_code, error_code(answer)) == (400, "malformed_json"), name
        assert (await client.get(state)).json()["version"] == before
