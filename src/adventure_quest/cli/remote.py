"""``aq play --url``: the same terminal game, played against an ``aq serve`` over HTTP.

``RemoteGame`` answers the calls the terminal session makes (the ones ``Game`` answers
in process) with the HTTP API: commands carry the character's token, and each read passes the
consistency token of the last command, so the player always sees their own doing. Tokens are
kept in a file (mode 0600) by server URL and character, so a character can be resumed later.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import msgspec

from adventure_quest.app.game import Outcome
from adventure_quest.app.repository import ConflictError
from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.events import EVENT_TYPES, Event, HeldItem
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.room import MonsterState, RoomState
from adventure_quest.domain.world import World

DEFAULT_TOKENS = Path.home() / ".config" / "adventure-quest" / "tokens.json"


class ServerError(Exception):
    """The server could not be reached or answered something this client cannot read."""

    code = "server_unreachable"


class TokenFile:
    """Character tokens by server URL and character id."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> dict[str, dict[str, str]]:
        try:
            data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def get(self, url: str, player_id: str) -> str:
        return self._all().get(url, {}).get(player_id, "")

    def put(self, url: str, player_id: str, token: str) -> None:
        data = self._all()
        data.setdefault(url, {})[player_id] = token
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(data, file, indent=1)


class RemoteGame:
    """The game's command and query calls, over HTTP."""

    def __init__(self, url: str, world: World, tokens: TokenFile) -> None:
        self.url = url.rstrip("/")
        self.world = world
        self.tokens = tokens
        self.consistency = ""
        self._client = httpx.AsyncClient(base_url=self.url, timeout=15)

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServerError(f"cannot reach {self.url}: {error}") from error
        try:
            body = answer.json()
        except ValueError:
            raise ServerError(f"{self.url}{path} answered {answer.status_code}") from None
        if answer.status_code >= 400:
            detail = body.get("error", {}) if isinstance(body, dict) else {}
            code, message = detail.get("code", "error"), detail.get("message", answer.text)
            if code == "conflict":
                raise ConflictError(path, 0)
            if answer.status_code >= 500:
                raise ServerError(f"{self.url}{path}: {code}: {message}")
            raise DomainError(code, message)
        return body

    def _state(self, player: dict[str, Any]) -> PlayerState:
        inventory = tuple(HeldItem(i["item_id"], i["item_key"]) for i in player["inventory"])
        return PlayerState(
            player["player_id"],
            player["name"],
            player["room"],
            player["health"],
            player["max_health"],
            player["level"],
            player["xp"],
            inventory,
            player["alive"],
            player.get("kills", 0),
            player.get("deaths", 0),
            achievements=tuple(player.get("achievements", ())),
        )

    def _outcome(self, body: dict[str, Any]) -> Outcome:
        self.consistency = body.get("consistency", "")
        events: list[Event] = []
        for view in body["events"]:
            kind = EVENT_TYPES.get(view["type"])
            if kind is not None:
                try:
                    events.append(msgspec.convert(view["data"], kind))
                except msgspec.ValidationError:
                    continue  # an event this client cannot show
        return Outcome(self._state(body["player"]), events)

    async def player(self, player_id: str) -> PlayerState:
        body = await self._call("GET", f"/players/{player_id}/state")
        state = self._state(body["state"])
        if not state.exists:
            raise DomainError("player_not_found", "There is no such character.")
        return state

    async def room(self, room_key: str) -> RoomState:
        params = {"consistency": self.consistency} if self.consistency else {}
        body = await self._call("GET", f"/rooms/{room_key}", params=params)
        items = tuple(HeldItem("", key) for key in body["item_keys"])
        monsters = tuple(MonsterState("", m["monster"], m["health"]) for m in body["monsters"])
        return RoomState(room_key, items, monsters)

    async def create_character(self, name: str) -> Outcome:
        body = await self._call("POST", "/players", json={"name": name})
        self.tokens.put(self.url, body["player"]["player_id"], body["token"])
        return self._outcome(body)

    async def _command(self, player_id: str, verb: str, body: dict[str, str] | None) -> Outcome:
        token = self.tokens.get(self.url, player_id)
        if not token:
            raise DomainError(
                "forbidden",
                f"This character was not created from here: no token for it in {self.tokens.path}.",
            )
        answer = await self._call(
            "POST",
            f"/players/{player_id}/{verb}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        return self._outcome(answer)

    async def move(self, player_id: str, direction: str) -> Outcome:
        if direction not in _DIRECTIONS:
            raise DomainError("unknown_direction", f"{direction!r} is not a direction.")
        return await self._command(player_id, "move", {"direction": direction})

    async def take(self, player_id: str, words: str) -> Outcome:
        return await self._command(player_id, "take", {"item": words})

    async def drop(self, player_id: str, words: str) -> Outcome:
        return await self._command(player_id, "drop", {"item": words})

    async def attack(self, player_id: str, words: str) -> Outcome:
        return await self._command(player_id, "attack", {"target": words})

    async def use(self, player_id: str, words: str) -> Outcome:
        return await self._command(player_id, "use", {"item": words})

    async def say(self, player_id: str, text: str) -> Outcome:
        return await self._command(player_id, "say", {"text": text})

    async def respawn(self, player_id: str) -> Outcome:
        return await self._command(player_id, "respawn", None)


_DIRECTIONS = {
    "north", "south", "east", "west", "up", "down", "northeast", "northwest", "southeast",
    "southwest", "n", "s", "e", "w", "u", "d", "ne", "nw", "se", "sw",
}  # fmt: skip
