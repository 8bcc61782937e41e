"""Upcasters: how old payload schemas become current ones. Pure functions on plain data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

#: v1 of PlayerCreated predates health on the event; every v1 character started at 100/100.
V1_STARTING_HEALTH = 100


def upcast_player_created_v1_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """PlayerCreated v1 ``{player_id, name, room}`` gains ``max_health`` and ``health``."""
    return {**payload, "max_health": V1_STARTING_HEALTH, "health": V1_STARTING_HEALTH}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("PlayerCreated", 1): upcast_player_created_v1_v2,
}
