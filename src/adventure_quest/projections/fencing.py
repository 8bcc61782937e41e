"""Fencing tokens: a partition's events are applied only under its newest owner's token.

Workers that share partitions through leases (processing/leases.py) can overlap: a worker
frozen past its lease (a long pause, SIGSTOP, a slow disk) wakes still believing it owns its
partitions while another worker already applies them. A lease cannot stop that worker, so the
read database does: each owner's token is the lease's revision at its claim, which only grows,
and every unit states, per partition it applies, the token it holds. In the same transaction
the read database checks the token against the highest one recorded for the partition, and
records it: a unit under an older token is refused whole (``Fenced``) and rolls back.

The check takes the partition's row lock (an upsert whose update is conditional), so two units
of one partition never run at once, whoever runs them and however they interleave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple


class Fence(NamedTuple):
    """A unit applies events of ``partition`` of consumer group ``group`` under ``token``."""

    group: str
    partition: int
    token: int


class Fenced(Exception):
    """A newer owner holds a partition this unit applies: nothing of the unit is committed."""

    code = "fenced"

    def __init__(self, fences: Sequence[Fence], recorded: dict[tuple[str, int], int]) -> None:
        self.fences = list(fences)
        self.recorded = recorded
        shown = ", ".join(
            f"{f.group} partition {f.partition} (token {f.token} < {recorded.get(f[:2], '?')})"
            for f in fences
        )
        super().__init__(f"fenced: newer owners hold {shown}")

    def partitions(self, group: str) -> set[int]:
        """The fenced partitions of ``group``."""
        return {fence.partition for fence in self.fences if fence.group == group}


def ordered(fences: Iterable[Fence]) -> list[Fence]:
    """One fence per partition (the highest token), in the order every unit locks them.

    A unit that locked its partitions in another order than a concurrent one could deadlock
    with it; both lock in (group, partition) order instead.
    """
    highest: dict[tuple[str, int], Fence] = {}
    for fence in fences:
        known = highest.get(fence[:2])
        if known is None or fence.token > known.token:
            highest[fence[:2]] = fence
    return [highest[key] for key in sorted(highest)]


def refused(fences: Sequence[Fence], accepted: Iterable[tuple[str, int]]) -> list[Fence]:
    """The fences not among ``accepted`` (those the database recorded): a newer token stands."""
    taken = set(accepted)
    return [fence for fence in fences if fence[:2] not in taken]
