"""Load aggregates from their latest snapshot plus newer events; save with optimistic concurrency.

Loaded states are kept in a bounded LRU cache keyed by stream id. A cached state may be stale when
another process appended meanwhile; the append's expected version then fails, the entry is
dropped, and the caller's retry loads fresh.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
from msgspec.structs import replace

from adventure_quest import tracing
from adventure_quest.app import tracking
from adventure_quest.app.aggregates import AggregateType
from adventure_quest.domain.events import Event
from adventure_quest.store.codec import EventCodec
from adventure_quest.store.envelope import AppendResult, Metadata, NewEvent
from adventure_quest.store.errors import ConcurrencyError, StoreUnavailableError
from adventure_quest.store.ports import EventStore, Snapshot, SnapshotStore
from adventure_quest.store.uuid7 import derived_id

S = TypeVar("S", bound=msgspec.Struct)
T = TypeVar("T")

_encode_state = msgspec.msgpack.Encoder().encode
#: Times an append is re-sent (same event ids) after the store was unreachable: 0.05 s, 0.1 s…
UNAVAILABLE_RETRIES = 5
#: How many events one ``once`` decision may have (a hand-over's finish has one to three): its
#: ids are derived from the key and the event's place, 0 to MAX_ONCE_EVENTS - 1.
MAX_ONCE_EVENTS = 8


class ConflictError(Exception):
    """Concurrent writers kept winning; the command gave up after its retries."""

    code = "conflict"

    def __init__(self, stream_id: str, attempts: int) -> None:
        super().__init__(f"{stream_id} kept changing under {attempts} attempts; try again")
        self.stream_id = stream_id


class Loaded(msgspec.Struct, Generic[S], frozen=True):
    """An aggregate's state, the stream version it reflects and where that version's event lies:
    its ``position`` in the log of ``shard`` (0: not known, as when the state came from a
    snapshot)."""

    state: S
    version: int
    position: int = 0
    shard: int = 0


class Saved(msgspec.Struct, Generic[S], frozen=True):
    """What an update appended, and where.

    ``repeated`` holds, when the store found the update's decision recorded already (an update
    with a ``once`` key attempted again), the events recorded then under its ids; ``events`` is
    then empty: nothing was appended.
    """

    state: S
    events: list[Event]
    result: AppendResult | None
    repeated: list[Event] = []


class LruCache(Generic[T]):
    """A bounded least-recently-used map; ``capacity`` 0 disables it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, T] = OrderedDict()

    def get(self, key: str) -> T | None:
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, item: T) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = item
        self._items.move_to_end(key)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)

    def __len__(self) -> int:
        return len(self._items)


class Repository:
    """The write side's access to aggregates."""

    def __init__(
        self,
        store: EventStore,
        snapshots: SnapshotStore,
        codec: EventCodec[Event],
        *,
        snapshot_every: int = 50,
        cache_size: int = 10_000,
        max_attempts: int = 5,
    ) -> None:
        self.store = store
        self.snapshots = snapshots
        self.codec = codec
        self.snapshot_every = snapshot_every
        self.max_attempts = max_attempts
        self._cache: LruCache[Loaded[Any]] = LruCache(cache_size)

    async def load(self, kind: AggregateType[S], stream_id: str) -> Loaded[S]:
        """The current state: cached, or latest snapshot plus newer events, or full replay."""
        cached = self._cache.get(stream_id)
        if cached is not None:
            return cached
        loaded = await self._load_from_store(kind, stream_id)
        # A concurrent save may have cached a newer state while this load was reading.
        newer = self._cache.get(stream_id)
        if newer is not None and newer.version > loaded.version:
            return newer
        self._cache.put(stream_id, loaded)
        return loaded

    async def refresh(self, kind: AggregateType[S], stream_id: str) -> Loaded[S]:
        """The current state when another writer may have appended: the cached state plus the
        events after it (a plain load when nothing is cached)."""
        cached = self._cache.get(stream_id)
        if cached is None:
            return await self.load(kind, stream_id)
        loaded = await self._replay(kind, stream_id, cached)
        newer = self._cache.get(stream_id)
        if newer is not None and newer.version >= loaded.version:
            return newer
        self._cache.put(stream_id, loaded)
        return loaded

    async def _load_from_store(self, kind: AggregateType[S], stream_id: str) -> Loaded[S]:
        state, version = kind.initial(stream_id), 0
        snapshot = await self.snapshots.load(stream_id)
        usable = snapshot is not None and snapshot.schema_version == kind.snapshot_schema
        if snapshot is not None and usable:
            state = msgspec.msgpack.decode(snapshot.state, type=kind.state_type)
            version = snapshot.version
        loaded = await self._replay(kind, stream_id, Loaded(state, version))
        stale = snapshot is not None and not usable
        if stale or loaded.version - version >= self.snapshot_every > 0:
            await self._snapshot(kind, stream_id, loaded)
        return loaded

    async def _replay(
        self,
        kind: AggregateType[S],
        stream_id: str,
        start: Loaded[S],
        to_version: int | None = None,
    ) -> Loaded[S]:
        state, version, position, shard = start.state, start.version, start.position, start.shard
        decode, evolve = self.codec.decode, kind.evolve
        for recorded in await self.store.read_stream(stream_id, version + 1, to_version):
            state = evolve(state, decode(recorded))
            version, position, shard = recorded.version, recorded.position, recorded.shard
        return Loaded(state, version, position, shard)

    async def load_at(self, kind: AggregateType[S], stream_id: str, version: int) -> Loaded[S]:
        """The state as it was at ``version`` (time travel): replay up to it."""
        start = Loaded(kind.initial(stream_id), 0)
        snapshot = await self.snapshots.load(stream_id)
        if (
            snapshot is not None
            and snapshot.schema_version == kind.snapshot_schema
            and snapshot.version <= version
        ):
            start = Loaded(
                msgspec.msgpack.decode(snapshot.state, type=kind.state_type), snapshot.version
            )
        return await self._replay(kind, stream_id, start, version)

    async def _snapshot(self, kind: AggregateType[S], stream_id: str, loaded: Loaded[S]) -> None:
        if loaded.version:
            await self.snapshots.save(
                Snapshot(
                    stream_id, loaded.version, kind.snapshot_schema, _encode_state(loaded.state)
                )
            )

    async def update(
        self,
        kind: AggregateType[S],
        stream_id: str,
        decide: Callable[[S], list[Event]],
        metadata: Metadata,
        *,
        once: str | None = None,
    ) -> Saved[S]:
        """Load, decide, append at the loaded version; on conflict reload and decide again.

        Domain errors raised by ``decide`` propagate at once (nothing is written). After
        ``max_attempts`` conflicts, raises ConflictError.

        ``once`` names a decision that must be recorded at most once on this stream however
        often, and however late, it is attempted (a hand-over's finish, keyed by its hand-over
        id): the events' ids are derived from it, so the store's unique index on event ids
        refuses a second copy in the same transaction as the append (a repeat: nothing is
        appended, ``Saved.repeated`` holds what was recorded the first time).
        """
        for attempt in range(self.max_attempts):
            if attempt:
                # Jittered back-off, so writers that collided do not collide again in lockstep.
                await asyncio.sleep(random.uniform(0, 0.002 * 2**attempt))
            saved = await self._attempt(kind, stream_id, decide, metadata, once)
            if saved is not None:
                return saved
        raise ConflictError(stream_id, self.max_attempts)

    async def _attempt(
        self,
        kind: AggregateType[S],
        stream_id: str,
        decide: Callable[[S], list[Event]],
        metadata: Metadata,
        once: str | None,
    ) -> Saved[S] | None:
        """Load, decide and append once, this process's only writer of the stream; None: the
        append conflicted with another process's."""
        loaded = await self.load(kind, stream_id)
        events = decide(loaded.state)
        if not events:
            await self._track(stream_id, loaded)
            return Saved(loaded.state, events, None)
        encoded = [self.codec.encode(e, metadata) for e in events]
        if once is not None:
            if len(events) > MAX_ONCE_EVENTS:
                raise ValueError(
                    f"a decision recorded once has at most {MAX_ONCE_EVENTS} events,"
                    f" not {len(events)} ({stream_id!r}, {once!r})"
                )
            encoded = [
                replace(e, event_id=derived_id(once, stream_id, n)) for n, e in enumerate(encoded)
            ]
        try:
            result = await self._append(stream_id, loaded.version, encoded)
        except ConcurrencyError:
            self._cache.drop(stream_id)
            return None  # another process appended first: try again
        except BaseException:
            self._cache.drop(stream_id)  # the outcome is unknown: reload next time
            raise
        if result.repeat:
            return await self._repeated(kind, stream_id, encoded, result, once)
        tracking.appended(stream_id, result.shard, result.position)
        state = loaded.state
        for event in events:
            state = kind.evolve(state, event)
        saved = Loaded(state, result.version, result.position, result.shard)
        self._cache.put(stream_id, saved)
        every = self.snapshot_every
        if every > 0 and result.version // every > loaded.version // every:
            await self._snapshot(kind, stream_id, saved)
        return Saved(state, events, result)

    async def recorded_once(self, stream_id: str, once: str) -> list[Event]:
        """What the ``once`` decision recorded on the stream, whoever recorded it and however long
        ago; [] if nothing yet. Found by its derived ids through the store's index on event ids.

        For an answer whose decision another writer recorded first (a hand-over's second half
        finished by the hand-over manager): the state shows it, and so should the events.
        """
        ids = [derived_id(once, stream_id, n) for n in range(MAX_ONCE_EVENTS)]
        return [self.codec.decode(r) for r in await self.store.read_by_ids(stream_id, ids)]

    async def _repeated(
        self,
        kind: AggregateType[S],
        stream_id: str,
        encoded: list[NewEvent],
        result: AppendResult,
        once: str | None,
    ) -> Saved[S]:
        """The store already held this decision: the stream's state now, and what it recorded
        (all of it: an earlier attempt at a ``once`` decision may have decided more events)."""
        self._cache.drop(stream_id)
        loaded = await self.load(kind, stream_id)
        await self._track(stream_id, loaded)
        if once is not None:
            repeated = await self.recorded_once(stream_id, once)
        else:  # the very same append sent again
            recorded = await self.store.read_by_ids(stream_id, [e.event_id for e in encoded])
            repeated = [self.codec.decode(r) for r in recorded]
        return Saved(loaded.state, [], result, repeated)

    async def _track(self, stream_id: str, loaded: Loaded[Any]) -> None:
        """Count the event behind ``loaded`` as the request's own, when someone is tracking.

        An update that appends nothing still answers with the stream's state, which may hold
        what another writer appended (a hand-over finished by the process manager first): a
        consistency token must cover that too (invariant 10).
        """
        if not tracking.active() or not loaded.version:
            return
        shard, position = loaded.shard, loaded.position
        if not position:  # loaded from a snapshot with nothing after it
            last = await self.store.read_stream(stream_id, loaded.version, loaded.version)
            if last:
                shard, position = last[-1].shard, last[-1].position
        tracking.appended(stream_id, shard, position)

    async def _append(self, stream_id: str, expected: int, events: list[NewEvent]) -> AppendResult:
        """Append; when the store was unreachable, send the very same events again.

        The outcome of an append cut off by a lost connection is unknown. Re-sending the same
        event ids is safe: the store answers a committed append with its original result.
        """
        attempt = 0
        while True:
            try:
                append = self.store.append(stream_id, expected, events)
                if tracing.TRACER is not None:
                    append = tracing.appending(append, stream_id, events)
                return await append
            except StoreUnavailableError as error:
                if not error.retryable or attempt >= UNAVAILABLE_RETRIES:
                    raise
                await asyncio.sleep(0.05 * 2**attempt)
                attempt += 1

    def forget(self, stream_id: str) -> None:
        """Drop a cached state (after an outside change)."""
        self._cache.drop(stream_id)
