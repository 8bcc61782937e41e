"""What the API shows at /metrics, on a prometheus-client registry of the process's own.

The composition root makes the registry (``process_registry``, in bootstrap/serve.py), never
prometheus-client's global one, so two APIs in one process (as in the tests) count apart.
Requests are counted as they are served (``ApiMetrics``); the cache, the feed, the replicas and
the processing path's lag are read when a scrape collects them (``ReadSideCollector``,
processing/status.py ``StatusCollector``).
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adventure_quest.processing.status import StatusCollector
from adventure_quest.queries.feed import RoomFeed
from adventure_quest.queries.read_side import ReadSide

BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def process_registry() -> CollectorRegistry:
    """A new registry with this process's own figures: CPU, memory and file descriptors
    (ProcessCollector, from /proc, so Linux only), garbage collections, the Python version,
    and the peak resident memory (``aq_process_peak_resident_memory_bytes``).

    ``_created`` series are turned off, for the whole process (prometheus-client has no
    per-registry switch): in the text format each would be one more gauge per series, holding
    the time the series was made, which nothing here reads.
    """
    disable_created_metrics()  # type: ignore[no-untyped-call]  # (untyped in the library)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    Gauge(
        "aq_process_peak_resident_memory_bytes",
        "Peak resident memory size in bytes.",
        registry=registry,
    ).set_function(peak_resident_bytes)
    return registry


def peak_resident_bytes() -> float:
    """The peak of resident memory (Linux /proc's VmHWM; elsewhere getrusage's maximum)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):  # counted as VmRSS is, so peak >= now
                return int(line.split()[1]) * 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0


class Latency:
    """A histogram by one label, each label value's child looked up once and kept.

    ``Histogram.labels`` validates and locks on every call, dearer than the observation itself;
    requests are timed by name (a route's), so the children are few and live as long as the API.
    """

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram
        self._children: dict[str, Histogram] = {}

    def observe(self, value: str, seconds: float) -> None:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._histogram.labels(value)
        child.observe(seconds)


class Count:
    """A counter by one label, each label value's child looked up once and kept (as ``Latency``)."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._children: dict[str, Counter] = {}

    def add(self, value: str, amount: float = 1) -> None:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._counter.labels(value)
        child.inc(amount)


class ApiMetrics:
    """What the API counts, and what each scrape reads, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, read: ReadSide, feed: RoomFeed) -> None:
        self.registry = registry
        self.commands = Latency(
            Histogram(
                "aq_command_seconds",
                "Command latency, by command.",
                ["command"],
                buckets=BUCKETS_S,
                registry=registry,
            )
        )
        self.queries = Latency(
            Histogram(
                "aq_query_seconds",
                "Query latency, by query.",
                ["query"],
                buckets=BUCKETS_S,
                registry=registry,
            )
        )
        self.outcomes = Count(
            Counter(
                "aq_command_outcomes_total",
                "Commands by outcome code.",
                ["code"],
                registry=registry,
            )
        )
        self.appended = Count(
            Counter(
                "aq_events_appended_total",
                "Events appended by this process's commands.",
                ["kind"],
                registry=registry,
            )
        )
        registry.register(ReadSideCollector(read, feed))
        #: The processing path's lag and dead letters: /metrics sets the status it read.
        self.lag = StatusCollector()
        registry.register(self.lag)


class ReadSideCollector(Collector):
    """The query cache's hits and misses, replica fallbacks and open feeds, read per scrape."""

    def __init__(self, read: ReadSide, feed: RoomFeed) -> None:
        self.read = read
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        stats = self.read.cache.stats
        yield CounterMetricFamily(
            "aq_cache_hits", "Query answers served from the cache.", value=stats.hits
        )
        yield CounterMetricFamily(
            "aq_cache_misses",
            "Query answers not in the cache (or too old).",
            value=stats.misses,
        )
        yield GaugeMetricFamily(
            "aq_cache_hit_ratio", "Hits over lookups since start.", value=stats.hit_ratio
        )
        yield CounterMetricFamily(
            "aq_cache_bypassed",
            "Query answers read from the database past a cache that could not be reached.",
            value=stats.bypassed,
        )
        yield CounterMetricFamily(
            "aq_replica_fallbacks",
            "Token queries a replica could not serve in time.",
            value=self.read.fallbacks,
        )
        yield GaugeMetricFamily(
            "aq_feed_subscribers", "Open room feeds.", value=self.feed.subscribers
        )

    def describe(self) -> Iterator[Metric]:
        """The names, so that a registry refuses another collector of the same."""
        return self.collect()
