"""The access log: one line a request, whichever lane answered it, and none when it is off."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adventure_quest.bootstrap import logs
from tests.api.server import bearer, create, live, settings_for
from tests.api.test_roles import aq, ready
from tests.services import free_port


@pytest.fixture
def logged() -> Iterator[Any]:
    """Configure logging as ``aq`` does for these settings, into a buffer; undone at the end."""
    buffer = io.StringIO()

    def configure(settings: Any) -> io.StringIO:
        logs.configure(settings, buffer)
        return buffer

    try:
        yield configure
    finally:
        logs.reset()


def access_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "adventure_quest.access"]


async def test_every_lane_logs_its_requests_with_method_path_status_duration_and_client(
    tmp_path: Path, logged: Any
) -> None:
    settings = settings_for(tmp_path, log_format="json", access_log=True)
    buffer = logged(settings)
    async with live(settings) as client:
        player_id, token, _ = await create(client, "Ledger")  # the application
        moved = await client.post(  # a well-formed command: the fast command lane runs it
            f"/players/{player_id}/move",
            json={"direction": "north"},
            headers={**bearer(token), "X-Request-ID": "req-42"},
        )
        assert moved.status_code == 200
        missing = await client.get("/rooms/nowhere")  # the application's 404
        assert missing.status_code == 404

    lines = access_lines(buffer)
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("POST", "/players", 201),
        ("POST", f"/players/{player_id}/move", 200),
        ("GET", "/rooms/nowhere", 404),
    ]
    for line in lines:
        assert line["level"] == "INFO"
        assert line["client"] == "127.0.0.1"
        assert isinstance(line["duration_ms"], float)
        assert 0 < line["duration_ms"] < 10_000
        assert line["message"].startswith(f"{line['method']} {line['path']} {line['status']} ")
    assert [line.get("request_id") for line in lines] == [None, "req-42", None]


#: A text access line: time, INFO, the logger, then method, path, status, duration and client.
TEXT_ACCESS = re.compile(
    r"^\S+Z INFO adventure_quest\.access: (GET|POST) (\S+) (\d{3}) \d+\.\d\d ms 127\.0\.0\.1$"
)


async def test_over_a_socket_cached_reads_are_logged_and_uvicorn_installs_no_handlers(
    tmp_path: Path, logged: Any
) -> None:
    settings = settings_for(tmp_path, access_log=True)
    buffer = logged(settings)
    async with live(settings, socket=True) as client:
        for _ in range(3):  # the first is the application's, then answers from the cache
            assert (await client.get("/world")).status_code == 200
        metrics = (await client.get("/metrics")).text.splitlines()
        hits = next(line.split()[-1] for line in metrics if line.startswith("aq_cache_hits"))
        assert float(hits) == 2, "two came from the fast lane"
        assert (await client.get("/rooms/a%0Aforged")).status_code == 404
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert logging.getLogger(name).handlers == [], name

    found = [TEXT_ACCESS.match(line) for line in buffer.getvalue().splitlines()]
    assert [(m[1], m[2], m[3]) for m in found if m] == [
        ("GET", "/world", "200"),
        ("GET", "/world", "200"),
        ("GET", "/world", "200"),
        ("GET", "/metrics", "200"),
        ("GET", "/rooms/a%0Aforged", "404"),  # as sent: a decoded line break would forge a line
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"access_log": False}, id="off"),
        pytest.param({"log_level": "warning", "access_log": True}, id="level"),
    ],
)
async def test_no_access_lines_when_the_access_log_is_off_or_the_level_above_info(
    tmp_path: Path, logged: Any, overrides: dict[str, Any]
) -> None:
    settings = settings_for(tmp_path, log_format="json", **overrides)
    buffer = logged(settings)
    async with live(settings) as client:
        player_id, token, _ = await create(client, "Quiet")
        moved = await client.post(
            f"/players/{player_id}/move", json={"direction": "north"}, headers=bearer(token)
        )
        assert moved.status_code == 200
        logging.getLogger("adventure_quest.api").warning("still %s", "here")
    assert access_lines(buffer) == []
    said = [msgspec.json.decode(line)["message"] for line in buffer.getvalue().splitlines()]
    assert "still here" in said, "the other loggers still log"


@pytest.mark.parametrize(
    ("options", "env", "logged"),
    [
        pytest.param([], {"AQ_LOG_FORMAT": "json"}, False, id="off by default"),
        pytest.param(["--access-log"], {"AQ_LOG_FORMAT": "json"}, True, id="--access-log"),
        pytest.param(["--log-format", "json"], {"AQ_ACCESS_LOG": "1"}, True, id="AQ_ACCESS_LOG=1"),
        pytest.param(
            ["--no-access-log"],
            {"AQ_LOG_FORMAT": "json", "AQ_ACCESS_LOG": "1"},
            False,
            id="flag wins",
        ),
    ],
)
def test_aq_serve_logs_requests_unless_told_not_to(
    tmp_path: Path, options: list[str], env: dict[str, str], logged: bool
) -> None:
    port = free_port()
    clean = {key: value for key, value in os.environ.items() if not key.startswith("AQ_")}
    command = [aq(), *options, "serve", "--port", str(port), "--data-dir", str(tmp_path)]
    with (tmp_path / "stderr").open("w+b") as err:
        server = subprocess.Popen(command, env={**clean, **env}, stderr=err)
        try:
            ready(f"http://127.0.0.1:{port}")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
                raise
        err.seek(0)
        lines = err.read().decode().splitlines()
    assert server.returncode == 0, lines
    records = [json.loads(line) for line in lines if line.startswith("{")]
    readyz = [r for r in records if r["logger"] == "adventure_quest.access"]
    assert bool(readyz) is logged, lines
    assert all(r["path"] == "/readyz" for r in readyz)


async def test_access_lines_are_batched_but_the_log_stays_in_order(tmp_path: Path) -> None:
    """Access lines are written together (api/access_log.py ``writer``), yet every other line
    comes after the access lines made before it, and nothing waits once the log is flushed."""
    from adventure_quest.api import access_log

    buffer = io.StringIO()
    logs.configure(settings_for(tmp_path, access_log=True), buffer)
    try:
        writer = access_log.writer
        assert writer is not None
        writer.write(("GET", "/one", 200, 1.5, "127.0.0.1", None))
        writer.write(("GET", "/two", 200, 1.5, "127.0.0.1", "req-2"))
        assert buffer.getvalue() == ""  # batched: nothing written yet
        logging.getLogger("adventure_quest.test").warning("between")
        writer.write(("POST", "/three", 503, 2.25, None, None))
        logs.flush_access()
    finally:
        logs.reset()
    said = [line.split(" ", 2)[2] for line in buffer.getvalue().splitlines()]
    assert said == [
        "adventure_quest.access: GET /one 200 1.50 ms 127.0.0.1",
        "adventure_quest.access: GET /two 200 1.50 ms 127.0.0.1 request_id=req-2",
        "adventure_quest.test: between",
        "adventure_quest.access: POST /three 503 2.25 ms -",
    ]
    assert access_log.writer is None  # reset: the API logs nothing more
