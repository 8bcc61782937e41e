"""Every read model the processing path keeps, in the order a batch is applied to them."""

from __future__ import annotations

from adventure_quest.domain.world import World
from adventure_quest.projections.achievement_list import Achievements
from adventure_quest.projections.model import Projection
from adventure_quest.projections.players import Leaderboard, PlayerDetails
from adventure_quest.projections.rooms import RoomView
from adventure_quest.projections.world_stats import WorldStats


def projections(world: World, partitions: int = 16) -> list[Projection]:
    """Every read model, in the order batches are applied to them (``partitions``: the
    queue's, which the world statistics' rows follow)."""
    return [
        PlayerDetails(),
        Leaderboard(),
        RoomView(world),
        WorldStats(partitions),
        Achievements(),
    ]
