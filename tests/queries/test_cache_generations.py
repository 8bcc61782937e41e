"""Bounded generations never let a stale answer in (issue 12, item 8), as a model.

Generations used to be kept forever (an in-process map that only grew; Redis ``g:`` keys
without a TTL). Now they are an LRU (and a TTL in Redis, tests/contract/test_cache_contract.py).
Whatever the interleaving of loads (a generation read, then a put), invalidations of the key
and uses of other keys (which evict generations), an entry in the cache is always one whose
load began after the key's last invalidation.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adventure_quest.queries.cache import Entry, MemoryCache

KEYS = ["a", "b", "c", "d", "e"]
#: ("begin", key): a load reads the generation; ("put", n): the n-th load still running ends;
#: ("invalidate", key): a commit changes the key's answer.
steps = st.lists(
    st.one_of(
        st.tuples(st.just("begin"), st.sampled_from(KEYS)),
        st.tuples(st.just("put"), st.integers(0, 20)),
        st.tuples(st.just("invalidate"), st.sampled_from(KEYS)),
    ),
    max_size=80,
)


@given(steps, st.integers(1, 3))
async def test_no_interleaving_stores_an_answer_older_than_the_last_invalidation(
    history: list[tuple[str, object]], capacity: int
) -> None:
    cache = MemoryCache(3600.0, capacity=capacity)  # few generations kept: many evicted
    version = dict.fromkeys(KEYS, 0)  # the model: how often each key's answer changed
    running: list[tuple[str, int, int]] = []  # (key, generation read, version then)
    for action, argument in history:
        if action == "begin":
            key = str(argument)
            running.append((key, await cache.generation(key), version[key]))
        elif action == "invalidate":
            key = str(argument)
            version[key] += 1
            await cache.invalidate([key])
        elif running:
            key, generation, seen = running.pop(int(str(argument)) % len(running))
            await cache.put(key, Entry(str(seen).encode(), ""), generation)
        for key in KEYS:
            found = await cache.get(key)
            assert found is None or int(found.body) == version[key], (key, found, version)
    assert len(cache._generations) <= cache.generations_capacity
