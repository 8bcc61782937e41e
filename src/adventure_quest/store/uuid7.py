"""Event ids (RFC 9562): UUIDv7, time-ordered, so new rows land at the end of an index; and ids
derived from a key, for events that must be recorded once however often they are attempted."""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
import uuid

# The module-level generator is seeded from the OS and reseeded in forked children; event ids
# need uniqueness (74 random bits per millisecond), not secrecy, and os.urandom costs a syscall.
_bits = random.getrandbits


def uuid7(now_ns: int | None = None, rand: int | None = None) -> str:
    """A version-7 UUID in canonical text form, from a millisecond clock and 74 random bits."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    r = _bits(74) if rand is None else rand
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (r >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | (r & 0x3FFF_FFFF_FFFF_FFFF)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def derived_id(key: str, *parts: str | int) -> str:
    """A version-8 UUID that is a function of ``key`` and ``parts``: the same inputs, the same id.

    The id of an event whose identity is what it finishes (a hand-over's second half) rather than
    the attempt that wrote it: every attempt at it, however late, proposes the same id, and the
    store's unique index on event ids records it once. When ``key`` is a UUIDv7 its 48-bit
    millisecond prefix is kept, so derived ids still land near the end of the id index.
    """
    digest = hashlib.blake2b("\x1f".join([key, *map(str, parts)]).encode(), digest_size=16)
    raw = bytearray(digest.digest())
    with contextlib.suppress(ValueError):  # not a UUID: the digest alone
        raw[:6] = uuid.UUID(key).bytes[:6]
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(raw)))
