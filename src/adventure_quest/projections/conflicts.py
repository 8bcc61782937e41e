"""Units that got in each other's way: rolled back whole, and applied again from the start.

On PostgreSQL units of different workers run at the same time and lock the rows they read and
write (projections/postgres.py). Two units that lock shared rows in opposite orders deadlock,
and PostgreSQL rolls one of them back; a unit that used rows kept in memory finds, just before
it commits, whether another writer committed meanwhile. Either way nothing of the unit reached
the database, and doing the whole unit again is right: its caller does (``retried``), after
forgetting whatever the failed attempt changed in memory.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Attempts of one unit before the conflict is raised: each failed attempt means another unit
#: committed, so running out of them means a pathological hot spot, not bad luck.
ATTEMPTS: Final = 20
BASE_S: Final = 0.002
CAP_S: Final = 0.2


class UnitConflictError(Exception):
    """A unit was rolled back because another unit's locks or commit got in its way; applying
    it again from the start can succeed."""

    code = "read_db_conflict"


async def retried(attempt: Callable[[], Awaitable[T]], *, attempts: int = ATTEMPTS) -> T:
    """``attempt()`` again while it fails with a conflict, with a short jittered pause (two
    units that collided do not collide again in step); the last conflict is raised."""
    failed = 0
    while True:
        try:
            return await attempt()
        except UnitConflictError as error:
            failed += 1
            if failed >= attempts:
                raise
            log.debug("unit conflict (attempt %d): %s", failed, error)
        step = min(CAP_S, BASE_S * 2**failed)
        await asyncio.sleep(step / 2 + random.random() * step / 2)
