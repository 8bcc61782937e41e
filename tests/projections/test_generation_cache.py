"""A writer keeps what it cached only while nobody else changed it: a model-based test.

Writers commit units with a scope (queue partitions: they change rows of those partitions
only) or without one (they may change any row), in any order, some failing. The generations
are the ones PostgreSQL's units see (projections/postgres.py): a unit with a scope sees the
counts of its partitions and of the units without a scope; one without sees the count of all.
Whenever a writer's cache keeps its contents at the start of a unit, every partition the unit
may read must be as the writer last saw it; the writer holds nothing of a partition it never
committed in.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from adventure_quest.projections.model import ALL, UNSCOPED, Generation, GenerationCache

PARTITIONS = 4
WRITERS = 3


class Kept(GenerationCache):
    """A cache of the partitions' contents: per partition, the change it saw last."""

    def __init__(self) -> None:
        super().__init__(capacity=1_000)
        self.seen: dict[int, int] = {}

    def size(self) -> int:
        return len(self.seen)

    def forget(self) -> None:
        self.seen.clear()


class Writers(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.caches = [Kept() for _ in range(WRITERS)]
        #: Units with a scope committed, per partition; units without one committed.
        self.counts = dict.fromkeys(range(PARTITIONS), 0)
        self.unscoped = 0
        #: How many times each partition's rows changed (by any unit that may change them).
        self.changes = dict.fromkeys(range(PARTITIONS), 0)
        self.begun: dict[int, tuple[Generation, frozenset[int] | None]] = {}

    def _generation(self, scope: frozenset[int] | None) -> Generation:
        if scope is None:
            return Generation({ALL: sum(self.counts.values()) + self.unscoped}, frozenset({ALL}))
        seen = {p: self.counts[p] for p in scope} | {UNSCOPED: self.unscoped}
        return Generation(seen, scope)

    @precondition(lambda self: len(self.begun) < WRITERS)
    @rule(
        writer=st.integers(0, WRITERS - 1),
        scope=st.none() | st.frozensets(st.integers(0, PARTITIONS - 1), min_size=1),
    )
    def begin(self, writer: int, scope: frozenset[int] | None) -> None:
        if writer in self.begun or any(
            other is None or scope is None or other & scope for _, other in self.begun.values()
        ):
            return  # units that may change the same rows take turns (their locks)
        generation = self._generation(scope)
        cache = self.caches[writer]
        cache.check(generation)
        readable = range(PARTITIONS) if scope is None else scope
        for p in readable:
            if p in cache.seen:
                assert cache.seen[p] == self.changes[p], (
                    f"writer {writer} kept partition {p} as of change {cache.seen[p]},"
                    f" but it is at {self.changes[p]}"
                )
        self.begun[writer] = (generation, scope)

    @precondition(lambda self: bool(self.begun))
    @rule(data=st.data(), fails=st.booleans())
    def end(self, data: st.DataObject, fails: bool) -> None:
        writer = data.draw(st.sampled_from(sorted(self.begun)))
        generation, scope = self.begun.pop(writer)
        cache = self.caches[writer]
        if fails:
            cache.clear()
            return
        changed = range(PARTITIONS) if scope is None else scope
        for p in changed:
            self.changes[p] += 1
            cache.seen[p] = self.changes[p]  # it holds what it wrote
        if scope is None:
            self.unscoped += 1
        else:
            for p in scope:
                self.counts[p] += 1
        cache.committed(generation)

    @invariant()
    def a_cache_holds_only_partitions_it_committed_in(self) -> None:
        for cache in self.caches:
            assert all(0 <= p < PARTITIONS for p in cache.seen)


Writers.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
TestWriters = Writers.TestCase
