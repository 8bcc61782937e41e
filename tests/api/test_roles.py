"""`aq serve --role relay|worker|api` as separate processes around PostgreSQL, NATS JetStream and
Redis: commands through one API process are read back through another, the shared cache is
invalidated by the worker process, and every part stops cleanly on SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats

from tests.api.test_metrics import promtool_path
from tests.conftest import run
from tests.postgres import scratch_database
from tests.prometheus_text import sample
from tests.services import free_port


def aq() -> str:
    return str(Path(sys.executable).with_name("aq"))


@contextlib.contextmanager
def part(
    role: str, env: dict[str, str], log: Path, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            [aq(), "serve", "--role", role, *extra], env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"{role} did not stop: {log.read_text()}") from None
        assert process.returncode == 0, f"{role} exited {process.returncode}: {log.read_text()}"


def ready(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


async def drop_stream(stream: str) -> None:
    client = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = client.jetstream()
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
    finally:
        await client.close()


def test_relay_worker_and_two_api_processes_play_one_game(tmp_path: Path) -> None:
    store = run(scratch_database("roles_store"))
    read = run(scratch_database("roles_read"))
    stream = f"AQROLES{uuid.uuid4().hex[:8].upper()}"
    env = {
        **os.environ,
        "AQ_STORE": store,
        "AQ_READ_DB": read,
        "AQ_QUEUE": f"nats://127.0.0.1:4222/{stream}",
        "AQ_CACHE": "redis://127.0.0.1:6379/0",
        "AQ_CACHE_TTL": "3600",  # only invalidation can make a cached answer change here
        "AQ_CACHE_PREFIX": f"aq:test:{stream}:",  # earlier runs' answers are not this game's
        "AQ_ADMIN_TOKEN": "roles-admin",
        "AQ_PARTITIONS": "4",
        "AQ_DATA_DIR": str(tmp_path),
    }
    upgraded = subprocess.run([aq(), "db", "upgrade"], env=env, capture_output=True, check=False)
    assert upgraded.returncode == 0, upgraded.stderr
    first_port, second_port = free_port(), free_port()
    first, second = f"http://127.0.0.1:{first_port}", f"http://127.0.0.1:{second_port}"
    # A relay and a worker serve their own metrics, each on a port of its own.
    own = {"worker": free_port(), "relay": free_port()}
    worker_env = {**env, "AQ_METRICS_PORT": str(own["worker"])}
    relay_env = {**env, "AQ_METRICS_PORT": str(own["relay"])}
    try:
        with (
            part("worker", worker_env, tmp_path / "worker.log", "--partitions", "all"),
            part("relay", relay_env, tmp_path / "relay.log"),
            part("api", env, tmp_path / "api1.log", "--port", str(first_port)),
            part("api", env, tmp_path / "api2.log", "--port", str(second_port)),
        ):
            ready(first)
            ready(second)
            created = httpx.post(f"{first}/players", json={"name": "Roamer"}).json()
            player_id, token = created["player"]["player_id"], created["token"]
            # The other API process reads the first one's write once the worker applied it.
            seen = httpx.get(
                f"{second}/players/{player_id}",
                params={"consistency": created["consistency"]},
                timeout=10,
            )
            assert seen.status_code == 200, seen.text
            assert seen.json()["room"] == "village_square"
            cached = httpx.get(f"{second}/players/{player_id}").json()  # cached in Redis now
            assert cached["room"] == "village_square"
            moved = httpx.post(
                f"{first}/players/{player_id}/move",
                json={"direction": "north"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert moved.status_code == 200, moved.text
            # Without a token, the second process answers from the shared cache: the worker
            # process must have invalidated it for the move to show (the TTL is an hour).
            deadline = time.monotonic() + 10
            room = cached["room"]
            while room != "market_street" and time.monotonic() < deadline:
                time.sleep(0.05)
                room = httpx.get(f"{second}/players/{player_id}").json()["room"]
            assert room == "market_street"
            metrics = httpx.get(f"{second}/metrics").text
            assert "aq_cache_hits_total" in metrics
            status = httpx.get(
                f"{first}/admin/status", headers={"Authorization": "Bearer roles-admin"}
            ).json()
            assert status["dead_letters"] == 0
            relayed = httpx.get(f"http://127.0.0.1:{own['relay']}/metrics").text
            assert sample(relayed, "aq_relay_published_events_total", shard="0") >= 2
            assert sample(relayed, "aq_relay_failures_total", shard="0") == 0
            projected = httpx.get(f"http://127.0.0.1:{own['worker']}/metrics").text
            assert sample(projected, "aq_projection_applied_events_total") >= 2
            assert sample(projected, "aq_projection_parked_events_total") == 0
            for text in (relayed, projected):
                assert "process_cpu_seconds_total" in text
                checked = subprocess.run(
                    [promtool_path(), "check", "metrics"],
                    input=text.encode(),
                    capture_output=True,
                    check=False,
                )
                assert (checked.returncode, checked.stdout + checked.stderr) == (0, b""), text
    finally:
        run(drop_stream(stream))


def test_a_split_role_without_a_shared_queue_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [aq(), "serve", "--role", "api", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "error [queue_not_shared]" in done.stderr
