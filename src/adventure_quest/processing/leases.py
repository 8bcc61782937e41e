"""Automatic partition assignment: workers of a group share partitions through NATS KV leases.

Every worker of a consumer group keeps a member key alive (``<group>.member.<id>``) and owns
partitions by holding their keys (``<group>.p<n>``, value: the owner's id). Keys live in a KV
bucket whose entries expire after ``ttl`` unless refreshed, so a worker that dies stops owning
its partitions within ``ttl``. Each round, a worker refreshes what it holds, gives up what it
holds beyond its fair share (ceil(partitions / live members)), and claims free partitions up to
that share with a create-if-absent.

Ownership can overlap: a worker frozen past its lease (or cut off from NATS) goes on believing
it owns its partitions while another worker claims them. So each claim comes with a fencing
token, the key's revision at the claim (``kv.create``): the bucket's revisions only grow, so a
later owner always holds a larger token. The read database refuses a unit under a token older
than the newest one it has seen for the partition (projections/fencing.py); and a worker whose
last successful round began more than ``ttl`` ago (``fresh``) fetches nothing meanwhile.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import NamedTuple

import nats.js.errors
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import QueueUnavailableError


class Lease(NamedTuple):
    """A partition this worker claimed: its fencing token, and whether it may still hold it."""

    partition: int
    token: int
    fresh: Callable[[], bool]


class PartitionLeases:
    """One worker's view of which partitions of ``group`` it owns."""

    def __init__(
        self, queue: NatsQueue, group: str, worker_id: str, *, ttl_s: float = 10.0
    ) -> None:
        self.queue = queue
        self.group = group
        self.worker_id = worker_id
        self.ttl_s = ttl_s
        self.bucket = f"AQ_LEASES_{queue.stream}"
        self._kv: KeyValue | None = None
        self._held: dict[int, int] = {}  # partition -> revision of our key
        #: Partition -> fencing token: the revision of our key when we claimed it.
        self.tokens: dict[int, int] = {}
        #: When the last successful round began (monotonic seconds; never: -inf).
        self._renewed = -math.inf

    async def _store(self) -> KeyValue:
        if self._kv is None:
            js = await self.queue.jetstream()
            try:
                self._kv = await js.key_value(self.bucket)
            except nats.js.errors.BucketNotFoundError:
                self._kv = await js.create_key_value(
                    KeyValueConfig(
                        bucket=self.bucket,
                        ttl=self.ttl_s,
                        history=1,
                        replicas=self.queue.stream_replicas,
                    )
                )
            # Keys expire after the bucket's lifetime, whatever this worker was told: with a
            # longer one, its rounds would come too late and ``fresh`` would say yes too long.
            ttl = (await self._kv.status()).ttl
            if ttl:
                self.ttl_s = min(self.ttl_s, ttl)
        return self._kv

    def _key(self, partition: int) -> str:
        return f"{self.group}.p{partition}"

    async def refresh(self) -> set[int]:
        """One round: stay a member, keep, give up and claim partitions; what is owned now."""
        began = time.monotonic()
        try:
            owned = await self._round()
        except (nats.errors.Error, OSError, TimeoutError) as error:
            raise QueueUnavailableError(f"partition leases of {self.group}: {error}") from error
        self._renewed = began
        return owned

    def fresh(self) -> bool:
        """Whether the keys may still be ours: the last round that renewed them began less
        than ``ttl`` ago (the server counts their time from a moment after that)."""
        return time.monotonic() - self._renewed < self.ttl_s

    def lease(self, partition: int) -> Lease:
        """What a held partition's jobs need of its lease."""
        return Lease(partition, self.tokens[partition], self.fresh)

    def forget(self, partition: int) -> None:
        """Stop counting ``partition`` as held (a newer owner's fence refused us)."""
        self._held.pop(partition, None)
        self.tokens.pop(partition, None)

    async def _round(self) -> set[int]:
        kv = await self._store()
        await kv.put(f"{self.group}.member.{self.worker_id}", self.worker_id.encode())
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            keys = []
        members = [k for k in keys if k.startswith(f"{self.group}.member.")]
        share = math.ceil(self.queue.partitions / max(len(members), 1))
        for partition, revision in list(self._held.items()):
            try:
                self._held[partition] = await kv.update(
                    self._key(partition), self.worker_id.encode(), last=revision
                )
            except nats.js.errors.KeyWrongLastSequenceError:
                self.forget(partition)  # expired and taken by another worker
        for partition in sorted(self._held)[share:]:
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await kv.delete(self._key(partition), last=self._held[partition])
            self.forget(partition)
        for partition in range(self.queue.partitions):
            if len(self._held) >= share:
                break
            if partition in self._held:
                continue
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                revision = await kv.create(self._key(partition), self.worker_id.encode())
                self._held[partition] = self.tokens[partition] = revision
        return set(self._held)

    async def release(self) -> None:
        """Give every partition back and leave (a clean stop)."""
        kv = await self._store()
        for partition, revision in list(self._held.items()):
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await kv.delete(self._key(partition), last=revision)
        self._held.clear()
        self.tokens.clear()
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await kv.delete(f"{self.group}.member.{self.worker_id}")
