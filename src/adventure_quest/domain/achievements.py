"""Achievements: milestones a character earns once, judged on its state alone.

Every rule reads only parts of ``PlayerState`` that never shrink (kills, level, rooms visited,
items taken, respawns), so a rule that held once holds on every later state: the achievements
process may look at a character late, or twice, and still reach the same verdict. Unlocking is a
decision like any other: it returns what the state qualifies for and has not unlocked yet, so
deciding again appends nothing. Exactly once, by construction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from adventure_quest.domain.events import AchievementUnlocked, Event
from adventure_quest.domain.player import PlayerState
from adventure_quest.domain.world import World

EXPLORER_ROOMS: Final = 10
HOARDER_CARRIED: Final = 8
HOARDER_TAKEN: Final = 20

Rule = Callable[[PlayerState, World], bool]


@dataclass(frozen=True, slots=True)
class Achievement:
    """One achievement: a stable key, the title players see, and the rule that earns it."""

    key: str
    title: str
    description: str
    rule: Rule


def rooms_visited(state: PlayerState, world: World) -> int:
    """Distinct rooms of this world the character has entered."""
    return sum(1 for room in state.rooms_visited if room in world.rooms)


def _explorer(state: PlayerState, world: World) -> bool:
    # A world smaller than the goal is explored once every room is.
    return rooms_visited(state, world) >= min(EXPLORER_ROOMS, len(world.rooms))


def _hoarder(state: PlayerState, world: World) -> bool:
    return state.most_items_carried >= HOARDER_CARRIED or state.items_taken >= HOARDER_TAKEN


def _reached(level: int) -> Rule:
    return lambda state, world: state.level >= level


#: Every achievement, in the order they are unlocked when several are earned at once.
ACHIEVEMENTS: Final[tuple[Achievement, ...]] = (
    Achievement(
        "first_blood",
        "First Blood",
        "Defeat your first monster.",
        lambda state, world: state.kills >= 1,
    ),
    Achievement(
        "explorer",
        "Explorer",
        f"Visit {EXPLORER_ROOMS} different rooms.",
        _explorer,
    ),
    Achievement(
        "cartographer",
        "Cartographer",
        "Visit every room of the world.",
        lambda state, world: rooms_visited(state, world) == len(world.rooms),
    ),
    Achievement(
        "hoarder",
        "Hoarder",
        f"Carry {HOARDER_CARRIED} items at once, or pick up {HOARDER_TAKEN} in all.",
        _hoarder,
    ),
    Achievement("level_3", "Seasoned Adventurer", "Reach level 3.", _reached(3)),
    Achievement("level_5", "Veteran", "Reach level 5.", _reached(5)),
    Achievement(
        "survivor",
        "Back From the Dead",
        "Die, and come back to try again.",
        lambda state, world: state.respawns >= 1,
    ),
    Achievement(
        "close_call",
        "Close Call",
        "Defeat a monster while below a fifth of your health.",
        lambda state, world: state.close_call_kills >= 1,
    ),
)
BY_KEY: Final = {achievement.key: achievement for achievement in ACHIEVEMENTS}


def earned(state: PlayerState, world: World) -> list[AchievementUnlocked]:
    """The achievements ``state`` qualifies for and has not unlocked, in ``ACHIEVEMENTS`` order."""
    if not state.exists:
        return []
    return [
        AchievementUnlocked(achievement.key, achievement.title)
        for achievement in ACHIEVEMENTS
        if achievement.key not in state.achievements and achievement.rule(state, world)
    ]


def unlock(state: PlayerState, world: World, *, as_of: PlayerState | None = None) -> list[Event]:
    """Unlock what the character has earned and not unlocked yet; nothing when it has it all.

    ``as_of``, an earlier state of the same character, limits the unlocks to what had been
    earned by then: a process that looks at an old event unlocks only what that event earned,
    so the unlock can name it as its cause. Rules only ever grow, so what held then holds now.
    """
    return [
        event
        for event in earned(state if as_of is None else as_of, world)
        if event.achievement not in state.achievements
    ]
