"""Automatic partition assignment: workers of a group share partitions through NATS KV leases.

Every worker of a consumer group keeps a member key alive (``<group>.member.<id>``) and owns
partitions by holding their keys (``<group>.p<n>``, value: the owner's id). Keys live in a KV
bucket whose entries expire after ``ttl`` unless refreshed, so a worker that dies stops owning
its partitions within ``ttl``. Each round, a worker refreshes what it holds, gives up what it
holds beyond its fair share (ceil(partitions / live members)), and claims free partitions up to
that share with a create-if-absent. Ownership can briefly overlap during a hand-over; that costs
nothing but work, because workers apply idempotently by stream version.
"""

from __future__ import annotations

import contextlib
import math

import nats.js.errors
from nats.js.api import KeyValueConfig
from nats.js.kv import KeyValue

from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.ports import QueueUnavailableError


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
        return self._kv

    def _key(self, partition: int) -> str:
        return f"{self.group}.p{partition}"

    async def refresh(self) -> set[int]:
        """One round: stay a member, keep, give up and claim partitions; what is owned now."""
        try:
            return await self._round()
        except (nats.errors.Error, OSError, TimeoutError) as error:
            raise QueueUnavailableError(f"partition leases of {self.group}: {error}") from error

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
                del self._held[partition]  # expired and taken by another worker
        for partition in sorted(self._held)[share:]:
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await kv.delete(self._key(partition), last=self._held[partition])
            del self._held[partition]
        for partition in range(self.queue.partitions):
            if len(self._held) >= share:
                break
            if partition in self._held:
                continue
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                self._held[partition] = await kv.create(
                    self._key(partition), self.worker_id.encode()
                )
        return set(self._held)

    async def release(self) -> None:
        """Give every partition back and leave (a clean stop)."""
        kv = await self._store()
        for partition, revision in list(self._held.items()):
            with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                await kv.delete(self._key(partition), last=revision)
        self._held.clear()
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await kv.delete(f"{self.group}.member.{self.worker_id}")
