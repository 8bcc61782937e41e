"""/metrics and `aq status --prometheus` are Prometheus text that promtool accepts, lint included,
and each API counts on a registry of its own."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import anyio
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from tests.api.server import bearer, create, live, settings_for
from tests.prometheus_text import families, sample

AQ = str(Path(sys.executable).with_name("aq"))


def promtool_path() -> str:
    """promtool (Debian's prometheus package; .ci/run installs it): CI fails without it."""
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is missing: apt-get install --no-install-recommends prometheus"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


async def check_metrics(promtool: str, text: str) -> None:
    """promtool check metrics: parses the text and lints it (names, units, help, types)."""
    done = await anyio.run_process([promtool, "check", "metrics"], input=text.encode(), check=False)
    complaints = (done.stdout + done.stderr).decode()
    assert (done.returncode, complaints) == (0, ""), text


async def test_metrics_of_a_busy_api_and_aq_status_pass_promtool(tmp_path: Path) -> None:
    promtool = promtool_path()
    settings = settings_for(tmp_path)
    async with live(settings) as client:
        me, token, _ = await create(client, "Prom")
        for command, body in [
            ("say", {"text": "hello"}),
            ("move", {"direction": "north"}),
            ("move", {"direction": "up"}),  # no exit: refused, another outcome code
        ]:
            await client.post(f"/players/{me}/{command}", json=body, headers=bearer(token))
        for path in [f"/players/{me}", "/rooms/village_square", "/leaderboard", "/world"]:
            assert (await client.get(path)).status_code == 200, path
        answer = await client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    metrics = answer.text
    # Series in every kind of metric, so that the lint below sees them all.
    assert sample(metrics, "aq_command_seconds_count", command="move") == 2
    assert sample(metrics, "aq_command_seconds_bucket", command="say", le="+Inf") == 1
    assert sample(metrics, "aq_query_seconds_count", query="room") == 1
    assert sample(metrics, "aq_command_outcomes_total", code="ok") == 3  # create, say, move
    assert sample(metrics, "aq_command_outcomes_total", code="no_exit") == 1
    assert sample(metrics, "aq_events_appended_total", kind="events") >= 4
    assert sample(metrics, "aq_relay_lag_events", shard="0") >= 0
    assert sample(metrics, "aq_projection_lag_seconds", partition="0") >= 0
    assert sample(metrics, "aq_dead_letters") == 0
    assert sample(metrics, "aq_cache_misses_total") >= 1
    assert sample(metrics, "aq_feed_subscribers") == 0
    assert {
        "process_cpu_seconds",  # ProcessCollector
        "python_gc_collections",  # GCCollector
        "python_info",  # PlatformCollector
        "aq_process_peak_resident_memory_bytes",
    } <= families(metrics)
    assert "_created" not in metrics
    await check_metrics(promtool, metrics)

    # aq status of the same data, in a process of its own, once the server has stopped.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AQ_")}
    status = await anyio.run_process(
        [AQ, "status", "--prometheus", "--data-dir", str(tmp_path)], env=env, check=False
    )
    assert status.returncode == 0, status.stderr.decode()
    text = status.stdout.decode()
    assert sample(text, "aq_relay_lag_events", shard="0") >= 0
    assert sample(text, "aq_projection_lag_events", partition="15") >= 0
    assert sample(text, "aq_dead_letters") == 0
    await check_metrics(promtool, text)


async def test_two_apis_in_one_process_count_on_registries_of_their_own(tmp_path: Path) -> None:
    async with (
        live(settings_for(tmp_path / "one")) as one,
        live(settings_for(tmp_path / "two")) as two,
    ):
        await create(one, "Uno")
        await create(one, "Dos")
        await create(two, "Tres")
        first, second = (await one.get("/metrics")).text, (await two.get("/metrics")).text
    assert sample(first, "aq_command_seconds_count", command="create") == 2
    assert sample(second, "aq_command_seconds_count", command="create") == 1
