"""The test NATS server's address, and removing a stream a test made there."""

from __future__ import annotations

import contextlib

import nats
import nats.js.errors

NATS_URL = "nats://127.0.0.1:4222"


async def delete_stream(name: str) -> None:
    """Delete stream ``name`` (gone already: nothing to do) on its own connection."""
    client = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(name)
    finally:
        await client.close()
