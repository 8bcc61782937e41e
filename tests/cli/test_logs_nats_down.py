"""A worker whose NATS server is down logs each failure once, and a few lines, not a flood;
and what the NATS client logs later is not put down to the request that opened the queue.

Seen before: about 1,000 lines in 15 s, each failed connection twice (the NATS client's error
callback logged it, and so did the job it was raised to), 64 jobs retrying at once.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from adventure_quest.api.access_log import request_id
from adventure_quest.bootstrap import logs
from adventure_quest.config import Settings
from tests.messaging.test_nats_failures import closing, queue_on
from tests.services import NatsServer, free_port

AQ = str(Path(sys.executable).with_name("aq"))
RUN_S = 5.0


def test_a_worker_with_nats_down_logs_each_failure_once_and_a_bounded_number_of_lines(
    tmp_path: Path,
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("AQ_")}
    queue = f"nats://127.0.0.1:{free_port()}"  # nobody listens there
    command = [AQ, "--log-format", "json", "worker", "--queue", queue, "--data-dir", str(tmp_path)]
    with (tmp_path / "stderr").open("w+b") as err:
        worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            time.sleep(RUN_S)
            assert worker.poll() is None, "the worker keeps trying while NATS is down"
        finally:
            worker.send_signal(signal.SIGINT)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
                raise
        err.seek(0)
        lines = err.read().decode().splitlines()

    assert worker.returncode == 0, lines
    assert len(lines) < 20, "\n".join(lines)
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert all({"time", "level", "logger", "message"} <= set(one) for one in logged)
    refused = [one for one in logged if "cannot connect" in one["message"]]
    assert refused, "the failure is reported"
    # Once, by the job that retries, not also by the NATS client's error callback.
    assert not [one for one in logged if one["logger"] == "adventure_quest.messaging.nats"]
    said = [(one["logger"], one["message"]) for one in logged]
    assert len(said) == len(set(said)), "\n".join(lines)


async def test_the_nats_client_logs_a_lost_connection_under_no_request_id(tmp_path: Path) -> None:
    buffer = io.StringIO()
    logs.configure(Settings(log_format="json"), buffer)
    server = NatsServer(tmp_path)
    server.start()
    queue = queue_on(server)
    try:
        async with closing(queue):
            opened_by = request_id.set("req-1")  # as while the API handles a request
            try:
                await queue.jetstream()
            finally:
                request_id.reset(opened_by)
            server.stop(signal.SIGKILL)
            async with asyncio.timeout(20):  # fails, rather than hangs, if it is never said
                while "adventure_quest.messaging.nats" not in buffer.getvalue():
                    await asyncio.sleep(0.05)
    finally:
        server.stop(signal.SIGKILL)
        logs.reset()
    [lost] = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert lost["logger"] == "adventure_quest.messaging.nats"
    assert "request_id" not in lost
