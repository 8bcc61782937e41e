"""Read model of achievements: every character's unlocked achievements, in unlock order."""

from __future__ import annotations

from collections.abc import Iterable

from adventure_quest.domain.events import AchievementUnlocked, Event, PlayerCreated
from adventure_quest.projections.model import ReadModel, RowKey, Rows, Table
from adventure_quest.projections.players import player_key
from adventure_quest.store.envelope import RecordedEvent

ACHIEVEMENTS = Table(
    "achievements",
    "player_id",
    {"name": "text", "unlocked": "json", "count": "integer"},
    indexes=(("count",),),
)


class Achievements(ReadModel):
    """One row per character: its name, ``unlocked`` achievements and their ``count``.

    Each entry of ``unlocked`` is ``{"achievement", "title", "position"}``; ``position`` is the
    unlock's place in its shard's log, which a client can wait for to see its own unlock.
    """

    name = "achievements"
    tables = (ACHIEVEMENTS,)
    handles = (PlayerCreated, AchievementUnlocked)

    def prefetch(self, event: Event, recorded: RecordedEvent) -> Iterable[RowKey]:
        if isinstance(event, AchievementUnlocked | PlayerCreated):
            return ((ACHIEVEMENTS.name, player_key(recorded)),)
        return ()

    async def apply(self, event: Event, recorded: RecordedEvent, rows: Rows) -> None:
        key = player_key(recorded)
        match event:
            case PlayerCreated(name=name):
                rows.put(ACHIEVEMENTS.name, key, {"name": name, "unlocked": [], "count": 0})
            case AchievementUnlocked(achievement=achievement, title=title):
                row = await rows.get(ACHIEVEMENTS.name, key) or {"name": "", "unlocked": []}
                if any(entry["achievement"] == achievement for entry in row["unlocked"]):
                    return  # like the domain's fold: an achievement is held once
                entry = {"achievement": achievement, "title": title, "position": recorded.position}
                unlocked = [*row["unlocked"], entry]
                rows.put(
                    ACHIEVEMENTS.name, key, {**row, "unlocked": unlocked, "count": len(unlocked)}
                )
