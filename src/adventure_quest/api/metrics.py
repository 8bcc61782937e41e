"""Counters and latency histograms of the API, in Prometheus text."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Histogram:
    """Cumulative-bucket latency histogram, one series per label value."""

    def __init__(self, name: str, help_text: str, label: str) -> None:
        self.name = name
        self.help_text = help_text
        self.label = label
        self._series: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, value: str, seconds: float) -> None:
        counts, total = self._series.setdefault(value, ([0] * (len(BUCKETS_S) + 1), [0.0]))
        counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        total[0] += seconds

    def count(self, value: str) -> int:
        found = self._series.get(value)
        return sum(found[0]) if found else 0

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        for value, (counts, total) in sorted(self._series.items()):
            running = 0
            for bound, count in zip([*map(str, BUCKETS_S), "+Inf"], counts, strict=True):
                running += count
                out.append(f'{self.name}_bucket{{{self.label}="{value}",le="{bound}"}} {running}')
            out.append(f'{self.name}_sum{{{self.label}="{value}"}} {total[0]}')
            out.append(f'{self.name}_count{{{self.label}="{value}"}} {running}')
        return out


class Counter:
    """A monotonically growing count, one series per label value."""

    def __init__(self, name: str, help_text: str, label: str) -> None:
        self.name = name
        self.help_text = help_text
        self.label = label
        self.values: dict[str, float] = {}

    def add(self, value: str, amount: float = 1) -> None:
        self.values[value] = self.values.get(value, 0) + amount

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} counter"]
        out += [f'{self.name}{{{self.label}="{v}"}} {n}' for v, n in sorted(self.values.items())]
        return out


class ApiMetrics:
    """What the API counts."""

    def __init__(self) -> None:
        self.commands = Histogram("aq_command_seconds", "Command latency, by command.", "command")
        self.queries = Histogram("aq_query_seconds", "Query latency, by query.", "query")
        self.outcomes = Counter("aq_command_outcomes_total", "Commands by outcome code.", "code")
        self.appended = Counter(
            "aq_events_appended_total", "Events appended by this process's commands.", "kind"
        )

    def lines(self) -> Iterable[str]:
        for metric in (self.commands, self.queries, self.outcomes, self.appended):
            yield from metric.lines()
