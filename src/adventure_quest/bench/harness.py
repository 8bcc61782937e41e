"""Shared pieces of every benchmark: a scratch store, percentiles, machine facts, output."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
import typer


@contextmanager
def scratch_url(url: str | None) -> Iterator[str]:
    """The URL given, or a fresh SQLite file in a temporary directory removed afterwards."""
    if url:
        yield url
        return
    folder = tempfile.mkdtemp(prefix="aq-bench-")
    try:
        yield f"sqlite:///{folder}/events.sqlite"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict[str, Any]:
    """What the figures ran on."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def report(result: dict[str, Any], as_json: bool) -> None:
    """One JSON object on stdout, or aligned lines for people."""
    result = {**result, "peak_rss_mb": round(peak_rss_mb(), 1), "machine": machine()}
    if as_json:
        typer.echo(msgspec.json.encode(result).decode())
        return
    for key, value in result.items():
        typer.echo(f"{key:>24}: {value}")


class Progress:
    """A single-line progress note on stderr for long set-up steps (quiet under --json)."""

    def __init__(self, label: str, total: int, quiet: bool) -> None:
        self.label, self.total, self.quiet = label, total, quiet
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.quiet or now - self._last < 0.5:
            return
        self._last = now
        rate = done / max(now - self.started, 1e-9)
        typer.echo(f"\r{self.label}: {done:,}/{self.total:,} ({rate:,.0f}/s)", err=True, nl=False)

    def done(self) -> None:
        if not self.quiet:
            typer.echo("", err=True)
