"""Sharding by aggregate id: a stable, well-spread hash that moves few streams when shards grow."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from adventure_quest.store.sharding import jump_hash, shard_of

PINNED = [0, 0, 3, 3, 1, 1, 0, 2, 1, 1, 3, 1]
PINNED_ROOM_2 = 1
PINNED_ROOM_16 = 1


def test_the_shard_of_a_stream_never_changes_between_releases() -> None:
    # Pinned: if these move, every sharded deployment would look for streams on the wrong shard.
    assert [shard_of(f"player-{i}", 4) for i in range(12)] == PINNED
    assert shard_of("room-village_square", 2) == PINNED_ROOM_2
    assert shard_of("room-village_square", 16) == PINNED_ROOM_16


@given(st.text(min_size=1, max_size=60), st.integers(1, 64))
def test_a_stream_always_lands_on_a_shard_that_exists(stream_id: str, shards: int) -> None:
    assert 0 <= shard_of(stream_id, shards) < shards
    assert shard_of(stream_id, shards) == shard_of(stream_id, shards)


@given(st.integers(0, 2**64 - 1), st.integers(1, 63))
def test_adding_a_shard_only_moves_streams_to_the_new_shard(key: int, shards: int) -> None:
    before, after = jump_hash(key, shards), jump_hash(key, shards + 1)
    assert after in (before, shards)


def test_streams_spread_evenly_over_the_shards() -> None:
    counts = Counter(shard_of(f"player-{n}", 8) for n in range(16_000))
    assert len(counts) == 8
    assert all(1_700 < count < 2_300 for count in counts.values()), counts


def test_growing_from_four_to_five_shards_moves_about_a_fifth_of_the_streams() -> None:
    streams = [f"room-{n}" for n in range(10_000)]
    moved = sum(shard_of(s, 4) != shard_of(s, 5) for s in streams)
    assert 1_700 < moved < 2_300
