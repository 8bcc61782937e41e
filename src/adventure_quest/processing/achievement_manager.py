"""The achievements process manager: it watches player streams and unlocks what was earned.

It consumes the queue like a projection worker, but its effect is a command on the player's own
stream: load, ``achievements.unlock``, append. Delivery is at least once, and that needs no
bookkeeping here: unlock decides on the character's state, which holds every achievement already
unlocked, so a redelivered event appends nothing, and when two copies of the process race, the
append's expected version lets one through and the other decides again on the newer state.

Each unlock names as its cause (``causation_id``) the event that earned it, and shares that
event's ``correlation_id``, so a trace leads from the command to its achievement. A manager that
is behind sees a character already further on than the event it is handling; it then judges the
character as it was at that event (``unlock(..., as_of=...)``), so an achievement is unlocked
while handling the event that earned it, not an earlier one.
"""

from __future__ import annotations

from adventure_quest import tracing
from adventure_quest.domain import achievements
from adventure_quest.domain.events import AchievementUnlocked, Event
from adventure_quest.domain.player import PlayerState
from adventure_quest.processing.process_manager import ProcessManager
from adventure_quest.store.envelope import Metadata, RecordedEvent


class AchievementsManager(ProcessManager):
    """Unlocks achievements on the player's stream, as consumer group ``achievements``."""

    default_group = "achievements"
    #: Events this manager appended.
    unlocked = 0

    async def handle(self, recorded: RecordedEvent) -> list[Event]:
        """Check the character whose stream carried ``recorded``; what that check appended."""
        players = self.game.players
        if recorded.stream_type != players.prefix or recorded.event_type == "AchievementUnlocked":
            return []
        then = await self._state_at(recorded)
        metadata = Metadata(
            correlation_id=recorded.metadata.correlation_id,
            causation_id=recorded.event_id,
            actor=recorded.metadata.actor,
        )
        update = self.game.repository.update(
            players,
            recorded.stream_id,
            lambda state: achievements.unlock(state, self.game.world, as_of=then),
            metadata,
        )
        if tracing.TRACER is not None:
            update = tracing.follow_up(
                "unlock achievements",
                recorded,
                update,
                correlation_id=metadata.correlation_id,
                causation_id=metadata.causation_id,
                group=self.group,
            )
        saved = await update
        self.checked += 1
        self.unlocked += sum(isinstance(event, AchievementUnlocked) for event in saved.events)
        return saved.events

    async def _state_at(self, recorded: RecordedEvent) -> PlayerState:
        """The character as ``recorded`` left it (or a later state, when that earns the same)."""
        repository, players = self.game.repository, self.game.players
        loaded = await repository.load(players, recorded.stream_id)
        if loaded.version < recorded.version:
            # Another process (or a command of this one still on its way to the cache)
            # appended since the character was cached. Deciding on the stale state would append
            # nothing, and no conflict would reveal the miss: read the newer events.
            loaded = await repository.refresh(players, recorded.stream_id)
        if loaded.version <= recorded.version or not achievements.earned(
            loaded.state, self.game.world
        ):
            return loaded.state  # nothing to unlock, or nothing later to tell apart from
        return (await repository.load_at(players, recorded.stream_id, recorded.version)).state
