"""Prometheus metrics of a process that serves no API: relays and workers on their own.

An API process serves its figures at ``/metrics`` (api/metrics.py). A process that only relays
or projects (``aq serve --role relay|worker``, ``aq relay``, ``aq worker``, ``aq process``) has
no HTTP server, so with ``metrics_port`` (``AQ_METRICS_PORT``) set it runs prometheus-client's
own small one on that port, over a registry of its own: the process's CPU, memory and
collections (as an API's), what its relays published and how often they failed, and what its
projections applied, skipped as duplicates and parked, and the units refused by a newer
owner's fence. Lag is not here: it is the same for every process, and an API process or
``aq status`` reports it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from adventure_quest.api.metrics import process_registry
from adventure_quest.config import SettingsError
from adventure_quest.processing.relay import Relay
from adventure_quest.projections.runner import ProjectionRunner

log = logging.getLogger(__name__)


class ProcessingCollector(Collector):
    """The relays' and the projections' counts, read at each scrape."""

    def __init__(self, relays: Sequence[Relay], runner: ProjectionRunner | None) -> None:
        self.relays = list(relays)
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        published = CounterMetricFamily(
            "aq_relay_published_events", "Events a relay published to the queue.", labels=["shard"]
        )
        failures = CounterMetricFamily(
            "aq_relay_failures",
            "Failed attempts of a relay (the store or the queue did not answer).",
            labels=["shard"],
        )
        for relay in self.relays:
            published.add_metric([str(relay.source.shard)], relay.published)
            failures.add_metric([str(relay.source.shard)], relay.failures)
        yield published
        yield failures
        totals = self.runner.totals if self.runner is not None else None
        for name, text, value in (
            ("applied", "Events the projections applied.", "applied"),
            ("duplicates", "Events the projections had applied already.", "duplicates"),
            ("parked", "Events parked as dead letters.", "parked"),
        ):
            family = CounterMetricFamily(f"aq_projection_{name}_events", text)
            if totals is not None:
                family.add_metric([], getattr(totals, value))
            yield family
        fenced = CounterMetricFamily(
            "aq_projection_fenced_units",
            "Units refused because a newer owner's fencing token holds one of their partitions.",
        )
        if self.runner is not None:
            fenced.add_metric([], self.runner.fenced)
        yield fenced

    def describe(self) -> Iterator[Metric]:
        return self.collect()


class MetricsPortError(SettingsError):
    """The metrics port could not be bound."""

    code = "cannot_listen"


@contextlib.contextmanager
def serving_metrics(
    host: str, port: int, relays: Sequence[Relay], runner: ProjectionRunner | None
) -> Iterator[None]:
    """Serve this process's metrics on ``host:port`` (0: not at all) while the block runs."""
    if not port:
        yield
        return
    registry = process_registry()
    registry.register(ProcessingCollector(relays, runner))
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        raise MetricsPortError(f"cannot serve metrics on {host}:{port}: {error.strerror}") from None
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
