"""UUIDv7 (RFC 9562): time-ordered ids, so new rows land at the end of an index."""

from __future__ import annotations

import random
import time

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
