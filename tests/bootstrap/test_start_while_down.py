"""Every role started while PostgreSQL and NATS are down waits for them, says so once, and
works when they come (issue 12, "Retries").

Seen: under connection pressure an API process exited (its room feed read the log head outside
any retry) while workers retried; a worker whose read database did not answer at start exited
too. Here the API, the relay and the worker each start against a PostgreSQL server that is
stopped and a NATS server that is not started; they stay up, /readyz names what is missing, a
handful of log lines say so; then both servers start, and a character created through the API
is read back through the relay, the queue and the worker.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from tests.api.test_roles import aq, part, ready
from tests.pg_replica import lone_server
from tests.services import NatsServer, free_port

#: The lines that say an outage began, of all the components of one process.
ANNOUNCED = "retrying with back-off"


def test_roles_started_while_the_services_are_down_wait_for_them_and_then_work(
    tmp_path: Path,
) -> None:
    nats_server = NatsServer(tmp_path)
    with lone_server() as pg:
        url = pg.url("postgres")
        env = {
            **os.environ,
            "AQ_STORE": url,
            "AQ_READ_DB": url,
            "AQ_QUEUE": f"{nats_server.url}/AQDOWN{uuid.uuid4().hex[:6].upper()}",
            "AQ_PARTITIONS": "2",
            "AQ_ADMIN_TOKEN": "down-admin",
            "AQ_DATA_DIR": str(tmp_path),
        }
        upgraded = subprocess.run(
            [aq(), "db", "upgrade"], env=env, capture_output=True, check=False
        )
        assert upgraded.returncode == 0, upgraded.stderr
        pg.stop()
        port = free_port()
        api = f"http://127.0.0.1:{port}"
        logs = {role: tmp_path / f"{role}.log" for role in ("api", "relay", "worker")}
        try:
            with (
                part("api", env, logs["api"], "--port", str(port)) as api_process,
                part("relay", env, logs["relay"]) as relay_process,
                part("worker", env, logs["worker"]) as worker_process,
            ):
                _wait_for_http(api)
                time.sleep(3)  # long enough for a process that gives up to have exited
                for process in (api_process, relay_process, worker_process):
                    assert process.poll() is None, {r: p.read_text() for r, p in logs.items()}
                not_ready = httpx.get(f"{api}/readyz", timeout=5)
                assert not_ready.status_code == 503
                assert {"event_store", "read_database"} <= set(not_ready.json()["failing"])

                pg.start_again()
                nats_server.start()
                ready(api, seconds=60)
                created = httpx.post(f"{api}/players", json={"name": "Patient"}, timeout=10)
                assert created.status_code == 201, created.text
                body = created.json()
                # Through the relay, NATS and the worker, each waiting out its back-off (at most
                # 5 s a step): the read model gets there; a query waits up to 5 s at a time.
                deadline = time.monotonic() + 60
                while True:
                    seen = httpx.get(
                        f"{api}/players/{body['player']['player_id']}",
                        params={"consistency": body["consistency"]},
                        timeout=10,
                    )
                    if seen.status_code != 412 or time.monotonic() > deadline:
                        break
                assert seen.status_code == 200, (seen.text, logs["worker"].read_text())
                assert seen.json()["name"] == "Patient"
        finally:
            nats_server.stop()
        for role, log in logs.items():
            text = log.read_text()
            assert "Traceback" not in text, (role, text)
            announced = text.count(ANNOUNCED)
            assert 1 <= announced <= 8, (role, announced, text)  # once per part, not per try
            assert len(text.splitlines()) < 60, (role, text)
        assert "recovered after" in logs["worker"].read_text()
        assert "recovered after" in logs["relay"].read_text()


def _wait_for_http(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")
