"""The fault drill on simulated hosts: nothing acknowledged lost, nothing doubled, read models
equal to a rebuild, tokens honoured, after shard, NATS and process faults (docs/scaling.md)."""

from __future__ import annotations

import pytest

from adventure_quest.bench import faults
from adventure_quest.cli.cluster import load_layout
from adventure_quest.cluster.deploy import Cluster
from tests.cluster.test_hosts import leftovers


def run_drill(seconds: float, seed: int) -> faults.Report:
    layout = load_layout("drill")
    lines: list[str] = []
    try:
        lease = {"AQ_LEASE_TTL": "3"}
        with Cluster(layout, progress=lines.append, extra_env=lease) as cluster:
            report = faults.drill(
                cluster,
                seconds=seconds,
                players=6,
                seed=seed,
                lease_s=3.0,
                progress=lines.append,
            )
    finally:
        assert leftovers(layout.name) == []
    print("\n".join(lines))
    print(report.table())
    return report


def check(report: faults.Report) -> None:
    kinds = " ".join(report.faults)
    for fault in (
        "(an event-store shard) cut off",
        "not the stream's leader",
        "leading the stream",
        "kill -9 aq",
        "frozen (SIGSTOP)",
        "read primary on read restarted",
    ):
        assert fault in kinds
    assert report.acknowledged > 50
    assert (report.lost, report.duplicated, report.unknown) == (0, 0, 0)
    assert report.tally_mismatches == 0
    assert report.rebuild_differs == []
    assert report.tokens_refused == 0
    assert report.converge_s is not None
    assert report.passed


def test_one_round_of_faults_loses_and_doubles_nothing() -> None:
    check(run_drill(seconds=1, seed=7))


@pytest.mark.soak
def test_ten_minutes_of_faults_lose_and_double_nothing() -> None:
    check(run_drill(seconds=600, seed=11))
