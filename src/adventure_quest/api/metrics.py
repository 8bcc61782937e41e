"""What the API shows at /metrics, on a prometheus-client registry of the process's own.

The composition root makes the registry (``process_registry``, in bootstrap/serve.py), never
prometheus-client's global one, so two APIs in one process (as in the tests) count apart.
Requests are counted as they are served (``ApiMetrics``); the cache, the feed, the replicas and
the processing path's lag are read when a scrape collects them (``ReadSideCollector``,
processing/status.py ``StatusCollector``).
"""

from __future__ import annotations

import bisect
import contextlib
import resource
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
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


class Latency(Collector):
    """A histogram by one label: counted in plain lists, made prometheus-client's family when a
    scrape collects it.

    Every observation is made on the event loop's thread, and so is every scrape (the /metrics
    route renders the registry there), so the counts need no lock: an observation is a bisect
    and two additions (about 0.25 us), where ``Histogram.observe`` takes a lock and walks its
    buckets (0.62 us), on every request.
    """

    def __init__(self, name: str, help_text: str, label: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.help_text = help_text
        self.label = label
        self._series: dict[str, tuple[list[int], list[float]]] = {}
        registry.register(self)

    def observe(self, value: str, seconds: float) -> None:
        found = self._series.get(value)
        if found is None:
            found = self._series[value] = ([0] * (len(BUCKETS_S) + 1), [0.0])
        found[0][bisect.bisect_left(BUCKETS_S, seconds)] += 1
        found[1][0] += seconds

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.help_text, labels=[self.label])
        for value, (counts, total) in sorted(self._series.items()):
            running, buckets = 0, []
            for bound, count in zip(_BOUNDS, counts, strict=True):
                running += count
                buckets.append((bound, float(running)))
            family.add_metric([value], buckets, total[0])
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.help_text, labels=[self.label])


class Count(Collector):
    """A counter by one label, counted in a plain dict (as ``Latency``, without a lock)."""

    def __init__(self, name: str, help_text: str, label: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.help_text = help_text
        self.label = label
        self._values: dict[str, float] = {}
        registry.register(self)

    def add(self, value: str, amount: float = 1) -> None:
        self._values[value] = self._values.get(value, 0) + amount

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.help_text, labels=[self.label])
        for value, count in sorted(self._values.items()):
            family.add_metric([value], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.help_text, labels=[self.label])


#: The buckets' ``le`` labels, as prometheus-client writes them.
_BOUNDS = [*map(str, BUCKETS_S), "+Inf"]


class ApiMetrics:
    """What the API counts, and what each scrape reads, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry, read: ReadSide, feed: RoomFeed) -> None:
        self.registry = registry
        self.commands = Latency(
            "aq_command_seconds", "Command latency, by command.", "command", registry
        )
        self.queries = Latency("aq_query_seconds", "Query latency, by query.", "query", registry)
        self.outcomes = Count("aq_command_outcomes", "Commands by outcome code.", "code", registry)
        self.appended = Count(
            "aq_events_appended", "Events appended by this process's commands.", "kind", registry
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
