"""What one process opens, part by part: each role and command asks only for what it runs.

A ``Parts`` opens a part the first time something asks for it (the event store, the queue, the
read database, ...), keeps it for whoever asks next, records its name in ``opened``, and closes
everything it opened, in reverse order, on the way out. So ``aq serve --role api`` never makes
a queue client or creates read-model tables, and ``aq relay`` never opens the read database:
the role asked for neither (tests/bootstrap/test_what_each_role_opens.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Final, Protocol, TypeVar

from adventure_quest.api.limits import Buckets, MemoryBuckets
from adventure_quest.app.world_loader import load_world
from adventure_quest.bootstrap.write import Services
from adventure_quest.config import Settings
from adventure_quest.domain.world import World
from adventure_quest.messaging.ports import MessageQueue
from adventure_quest.messaging.urls import check_queue_url, open_queue
from adventure_quest.processing.groups import ALL_GROUPS
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.catalog import projections
from adventure_quest.projections.dead_letter_admin import DeadLetterAdmin
from adventure_quest.projections.ports import ReadDatabase
from adventure_quest.projections.runner import ProjectionRunner
from adventure_quest.projections.urls import check_read_database_url, open_read_database
from adventure_quest.queries.cache import CacheBackend, check_cache_url, open_cache
from adventure_quest.store.ports import CheckpointStore, EventStore, SnapshotStore
from adventure_quest.store.urls import (
    check_store_url,
    open_checkpoint_stores,
    open_event_store,
    open_snapshot_store,
)

#: The names ``Parts.opened`` records, one per kind of part.
EVENT_STORE: Final = "event store"
SNAPSHOTS: Final = "snapshot store"
CHECKPOINTS: Final = "checkpoint stores"
QUEUE: Final = "queue"
READ_DATABASE: Final = "read database"
READ_TABLES: Final = "read-model tables"
REPLICAS: Final = "read replicas"
CACHE: Final = "cache"
RATE_LIMITS: Final = "rate limits"
RELAYS: Final = "relays"


def check_settings(settings: Settings) -> None:
    """Refuse every URL that no part could open, before any part opens (and writes) anything."""
    check_store_url(settings.event_store_url)
    check_queue_url(settings.queue_url)
    check_read_database_url(settings.read_database_url)
    for url in settings.read_replicas:
        check_read_database_url(url)
    check_cache_url(settings.cache_url)


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class Parts:
    """Opens the parts a process asks for, once each; closes them all when it is left."""

    def __init__(self, settings: Settings, world: World | None = None) -> None:
        self.settings = settings
        self.world = world if world is not None else load_world(settings.world_path)
        #: What was opened, in order (each name once).
        self.opened: list[str] = []
        self._parts: dict[str, Any] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Parts:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def _keep(self, name: str, part: C) -> C:
        self._stack.push_async_callback(part.close)
        self._parts[name] = part
        self.opened.append(name)
        return part

    # -- the write side ---------------------------------------------------------------------

    def event_store(self) -> EventStore:
        """Every shard's event store (the stream cache sized by ``stream_cache_size``)."""
        found: EventStore | None = self._parts.get(EVENT_STORE)
        if found is None:
            s = self.settings
            store = open_event_store(
                s.event_store_url,
                stream_cache_size=s.stream_cache_size,
                pool_size=s.store_pool_size,
            )
            found = self._keep(EVENT_STORE, store)
        return found

    def snapshots(self) -> SnapshotStore:
        found: SnapshotStore | None = self._parts.get(SNAPSHOTS)
        if found is None:
            s = self.settings
            snapshots = open_snapshot_store(
                s.event_store_url, pool_size=max(1, s.store_pool_size // 2)
            )
            found = self._keep(SNAPSHOTS, snapshots)
        return found

    def write_side(self) -> Services:
        """The repository and the game's command handlers over the event and snapshot stores."""
        found: Services | None = self._parts.get("write side")
        if found is None:
            found = Services(self.settings, self.world, self.event_store(), self.snapshots())
            self._parts["write side"] = found
        return found

    # -- the processing path ----------------------------------------------------------------

    def checkpoints(self) -> Sequence[CheckpointStore]:
        """One checkpoint store per shard (where each relay keeps how far it published)."""
        found: list[CheckpointStore] | None = self._parts.get(CHECKPOINTS)
        if found is None:
            found = open_checkpoint_stores(self.settings.event_store_url)
            for store in found:
                self._stack.push_async_callback(store.close)
            self._parts[CHECKPOINTS] = found
            self.opened.append(CHECKPOINTS)
        return found

    def queue(self) -> MessageQueue:
        found: MessageQueue | None = self._parts.get(QUEUE)
        if found is None:
            queue = open_queue(
                self.settings.queue_url, partitions=self.settings.partitions, groups=ALL_GROUPS
            )
            found = self._keep(QUEUE, queue)
        return found

    def relays(self) -> list[Relay]:
        """One relay per shard: its log, its checkpoint, the queue."""
        found: list[Relay] | None = self._parts.get(RELAYS)
        if found is None:
            logs, checkpoints = self.event_store().logs(), self.checkpoints()
            found = [
                Relay(log, self.queue(), checkpoint)
                for log, checkpoint in zip(logs, checkpoints, strict=True)
            ]
            self._parts[RELAYS] = found
            self.opened.append(RELAYS)
        return found

    # -- the read side ----------------------------------------------------------------------

    def read_database(self) -> ReadDatabase:
        """The read database's primary (its tables are not created here: see ``runner``)."""
        found: ReadDatabase | None = self._parts.get(READ_DATABASE)
        if found is None:
            s = self.settings
            db = open_read_database(s.read_database_url, pool_size=s.read_pool_size)
            found = self._keep(READ_DATABASE, db)
        return found

    async def runner(self, *, create_tables: bool) -> ProjectionRunner:
        """The projections over the read database; ``create_tables``: the workers' set-up."""
        found: ProjectionRunner | None = self._parts.get("runner")
        if found is None:
            found = ProjectionRunner(
                self.read_database(),
                projections(self.world, self.settings.partitions),
                self.event_store(),
                self.write_side().codec,
                partitions=self.settings.partitions,
            )
            self._parts["runner"] = found
        if create_tables and READ_TABLES not in self.opened:
            await found.setup()
            self.opened.append(READ_TABLES)
        return found

    async def dead_letters(self) -> DeadLetterAdmin:
        """Listing, retrying and skipping parked events (creates no table)."""
        return DeadLetterAdmin.of(await self.runner(create_tables=False))

    def replicas(self) -> list[ReadDatabase]:
        found: list[ReadDatabase] | None = self._parts.get(REPLICAS)
        if found is None:
            found = []
            for url in self.settings.read_replicas:
                replica = open_read_database(url, pool_size=self.settings.read_pool_size)
                self._stack.push_async_callback(replica.close)
                found.append(replica)
            self._parts[REPLICAS] = found
            if found:
                self.opened.append(REPLICAS)
        return found

    def cache(self) -> CacheBackend:
        found: CacheBackend | None = self._parts.get(CACHE)
        if found is None:
            s = self.settings
            found = self._keep(CACHE, open_cache(s.cache_url, s.cache_ttl_s, s.cache_prefix))
        return found

    def rate_buckets(self) -> Buckets:
        """The commands' rate-limit buckets: in Redis when the cache is (shared by every API
        process), else in this process; in this process too when every limit is off."""
        found: Buckets | None = self._parts.get(RATE_LIMITS)
        if found is None:
            s, memory = self.settings, MemoryBuckets()
            shared = bool(s.rate_limits) and s.cache_url.startswith(("redis://", "rediss://"))
            buckets: Buckets = memory
            if shared:
                # Imported here: the Redis client is loaded only by those who use Redis.
                from adventure_quest.api.redis_limits import RedisBuckets

                buckets = RedisBuckets(s.cache_url, s.cache_prefix, memory)
            found = self._keep(RATE_LIMITS, buckets)
        return found
