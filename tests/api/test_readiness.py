"""/readyz checks every backing service the role uses and names the one that failed (issue 12).

Seen: /readyz answered 200 while the queue (NATS) or the cache (Redis) was unreachable; it
checked the event store and the read database only. The tests run a NATS and a Redis server of
their own and kill them.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from tests.api.server import live, settings_for
from tests.prometheus_text import families, sample
from tests.services import private_nats, private_redis


async def test_readyz_names_the_cache_when_redis_is_gone(tmp_path: Path) -> None:
    with private_redis(tmp_path) as redis_server:
        settings = settings_for(tmp_path, cache_url=redis_server.url)
        async with live(settings) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {
                "event_store": "ok",
                "read_database": "ok",
                "cache": "ok",
                "queue": "ok",
            }
            await asyncio.to_thread(redis_server.kill)
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
            body = ready.json()
            assert body["status"] == "unavailable"
            assert body["failing"] == ["cache"]
            assert body["checks"]["cache"].startswith("failed: redis")
            assert body["checks"]["event_store"] == "ok"


async def test_readyz_names_the_queue_when_nats_is_gone(tmp_path: Path) -> None:
    with private_nats(tmp_path) as nats_server:
        queue = f"{nats_server.url}/AQREADY{uuid.uuid4().hex[:6].upper()}"
        settings = settings_for(tmp_path, queue_url=queue, partitions=2)
        async with live(settings) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["queue"] == "ok"
            assert sample((await client.get("/metrics")).text, "aq_status_up") == 1
            await asyncio.to_thread(nats_server.stop)
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
            body = ready.json()
            assert body["failing"] == ["queue"]
            assert "NATS at" in body["checks"]["queue"]
            assert body["checks"]["cache"] == "ok"
            # The metrics are served all the same, saying the lag status could not be read.
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200, metrics.text
            assert sample(metrics.text, "aq_status_up") == 0
            assert {"aq_query_seconds", "aq_command_seconds", "process_cpu_seconds"} <= families(
                metrics.text
            )
