"""``aq bench scaling``: does adding a host add throughput? Three curves on simulated hosts.

Every point is a fresh cluster (``adventure_quest.cluster``) whose scaled hosts all get the same
CPU quota, with the load generators on a host of their own, so a figure is bound by the hosts:

* **commands**: N API hosts and N event-store shards (one of each per N); one ``aq loadtest``
  (commands only) per API host;
* **projections**: W worker hosts (``--partitions auto``) on one PostgreSQL read database; a
  backlog (``--backlog spread``: 500 characters spread over the map, ``spread_events``;
  ``two-rooms``: ``aq bench project``'s, all walking between two rooms) is written to the
  store and relayed to NATS first, then the workers start, and the
  rate is timed while the backlog goes from 95 % to 5 % of its size (the workers' start-up is
  not in it);
* **queries**: R read replicas (``--replica-quota`` each: a query costs a replica about a
  quarter of what it costs an API host, so small replicas keep the three API hosts from being
  the limit) behind three API hosts, uncached (``AQ_CACHE=none://``: every query reads a
  replica) and cached (Redis);

Efficiency is throughput(N) / (N x throughput(1)). Each point also reports every host's CPU use
against its quota, and the sum of the quotas against the machine's cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from adventure_quest.app.aggregates import event_codec
from adventure_quest.app.world_loader import load_world
from adventure_quest.bench.harness import machine
from adventure_quest.bench.project import events_for
from adventure_quest.cluster.deploy import Cluster
from adventure_quest.cluster.layout import Layout, layout_from
from adventure_quest.cluster.services import aq_command, aq_env
from adventure_quest.domain.events import Event, PlayerCreated, PlayerMoved, PlayerSaid
from adventure_quest.store.envelope import ANY, NewEvent
from adventure_quest.store.urls import open_event_store
from adventure_quest.store.uuid7 import uuid7

CURVES: Final = ("commands", "projections", "queries")
STREAM: Final = "AQ_EVENTS"
Progress = Callable[[str], None]


def _layout(name: str, hosts: dict[str, tuple[list[str], float]], partitions: int = 16) -> Layout:
    table = {host: {"run": run, "cpu": cpu} for host, (run, cpu) in hosts.items()}
    return layout_from({"name": name, "partitions": partitions, "hosts": table})


def commands_layout(n: int, quota: float, load_cpu: float) -> Layout:
    hosts: dict[str, tuple[list[str], float]] = {}
    for i in range(1, n + 1):
        hosts[f"store{i}"] = (["store"], quota)
        hosts[f"api{i}"] = (["api"], quota)
    # The write path alone: players do not read their writes back (no relay, no worker).
    hosts["read"] = (["read-primary", "nats"], 0.1)
    hosts["load"] = (["load"], load_cpu)
    return _layout("aqcmd", hosts)


def projections_layout(w: int, quota: float, load_cpu: float, partitions: int = 16) -> Layout:
    # NATS needs about 0.09 ms of CPU per event it delivers (and its acknowledgement): 0.6
    # cores keep it ahead of four workers. The store and the relay work before the timed
    # window only (writing and relaying the backlog).
    hosts: dict[str, tuple[list[str], float]] = {
        "store": (["store"], 0.1),
        "nats": (["nats"], 0.6),
        "read": (["read-primary"], 0.3),
        "relay": (["relay"], 0.1),
    }
    for i in range(1, w + 1):
        hosts[f"work{i}"] = (["worker"], quota)
    hosts["load"] = (["load"], min(load_cpu, 0.2))
    return _layout("aqprj", hosts, partitions)


def queries_layout(r: int, quota: float, load_cpu: float, *, cached: bool) -> Layout:
    hosts: dict[str, tuple[list[str], float]] = {
        "store": (["store", "nats"], 0.1),
        "read": (["read-primary", *(["redis"] if cached else [])], 0.1),
        # The players' new characters reach the read models (a query of one is a 404 till then).
        "proc": (["relay", "worker"], 0.2),
    }
    for i in range(1, r + 1):
        hosts[f"rep{i}"] = (["read-replica"], quota)
    for i in range(1, 4):
        hosts[f"api{i}"] = (["api"], 0.3)
    hosts["load"] = (["load"], load_cpu)
    return _layout("aqqry", hosts)


def _cpu(cluster: Cluster) -> dict[str, float]:
    return {name: host.cpu_seconds() for name, host in cluster.network.hosts.items()}


def _hosts_report(cluster: Cluster, before: dict[str, float], seconds: float) -> dict[str, Any]:
    after = _cpu(cluster)
    return {
        name: {
            "quota": host.cpu,
            "cores_used": round((after[name] - before[name]) / seconds, 3),
        }
        for name, host in cluster.network.hosts.items()
    }


def _loadtests(
    cluster: Cluster,
    urls: Sequence[str],
    players: int,
    seconds: float,
    query_ratio: float,
    *,
    read_back: bool = True,
) -> list[dict[str, Any]]:
    """One ``aq loadtest`` per URL, all at once on the load host; their JSON figures."""
    load = cluster.host("load")
    running = []
    for i, url in enumerate(urls):
        argv = [*aq_command(), "loadtest", "--url", url, "--players", str(players)]
        argv += ["--duration", str(seconds), "--query-ratio", str(query_ratio), "--json"]
        argv += ["--seed", str(1000 + i), *([] if read_back else ["--no-read-back"])]
        out = cluster.workdir / f"loadtest{i}.json"
        with out.open("wb") as sink:
            running.append(
                (
                    out,
                    subprocess.Popen(
                        load.confined(argv, None),
                        stdout=sink,
                        stderr=subprocess.DEVNULL,
                        env=aq_env({}),
                    ),
                )
            )
    results = []
    for out, process in running:
        process.wait(timeout=seconds + 600)
        text = out.read_text().strip()
        if process.returncode != 0 or not text:
            raise RuntimeError(f"aq loadtest failed ({process.returncode}): {text[-500:]}")
        results.append(json.loads(text.splitlines()[-1]))
    return results


def measure_commands(
    n: int, *, quota: float, load_cpu: float, players: int, seconds: float, progress: Progress
) -> dict[str, Any]:
    with Cluster(commands_layout(n, quota, load_cpu), progress=progress) as cluster:
        before = _cpu(cluster)
        began = time.monotonic()
        runs = _loadtests(cluster, cluster.endpoints.apis, players, seconds, 0.0, read_back=False)
        hosts = _hosts_report(cluster, before, time.monotonic() - began)
    return {
        "n": n,
        "throughput": round(sum(r["commands_per_s"] for r in runs), 1),
        "errors": sum(r["errors"] for r in runs),
        "error_samples": [e for r in runs for e in r["error_samples"]][:5],
        "rejections": sum(r["rejections"] for r in runs),
        "command_p99_ms": max(r["command_p99_ms"] for r in runs),
        "hosts": hosts,
    }


def measure_queries(
    r: int,
    *,
    cached: bool,
    quota: float,
    load_cpu: float,
    players: int,
    seconds: float,
    progress: Progress,
) -> dict[str, Any]:
    extra = {} if cached else {"AQ_CACHE": "none://"}
    layout = queries_layout(r, quota, load_cpu, cached=cached)
    with Cluster(layout, progress=progress, extra_env=extra) as cluster:
        before = _cpu(cluster)
        began = time.monotonic()
        runs = _loadtests(cluster, cluster.endpoints.apis, players, seconds, 1.0)
        hosts = _hosts_report(cluster, before, time.monotonic() - began)
    return {
        "n": r,
        "throughput": round(sum(r["queries_per_s"] for r in runs), 1),
        "errors": sum(r["errors"] for r in runs),
        "error_samples": [e for r in runs for e in r["error_samples"]][:5],
        "query_p99_ms": max(r["query_p99_ms"] for r in runs),
        "hosts": hosts,
    }


BACKLOGS: Final = ("spread", "two-rooms")
#: How the projection curve's workers get their partitions: ``fixed`` (worker i of W takes
#: partitions i, i + W, ...: an even share from the start) or ``auto`` (the leases share them
#: out as the workers come up, so the timed window holds the leases' rebalancing).
ASSIGNMENTS: Final = ("fixed", "auto")


def share(i: int, w: int, partitions: int) -> str:
    """The ``--partitions`` of worker ``i`` (from 1) of ``w`` under fixed assignment."""
    return ",".join(str(p) for p in range(i - 1, partitions, w))


def measure_projections(
    w: int,
    *,
    quota: float,
    load_cpu: float,
    events: int,
    progress: Progress,
    backlog: str = "spread",
    assign: str = "fixed",
    partitions: int = 16,
) -> dict[str, Any]:
    layout = projections_layout(w, quota, load_cpu, partitions)
    with Cluster(layout, progress=progress, held=("worker",)) as cluster:
        load = cluster.host("load")
        env = cluster.env()
        made = spread_events(events) if backlog == "spread" else events_for(events)
        load.inside(lambda: _write_backlog(env["AQ_STORE"], made, progress))
        servers = cluster.nats_servers()
        load.inside(lambda: _until_relayed(servers, events, progress))
        before = _cpu(cluster)
        began = time.monotonic()
        for i in range(1, w + 1):
            extra = ("--partitions", share(i, w, layout.partitions)) if assign == "fixed" else ()
            cluster.start_role(cluster.host(f"work{i}"), "worker", *extra)
        timing = load.inside(
            lambda: _drain(servers, layout.partitions, events, progress, env["AQ_READ_DB"])
        )
        hosts = _hosts_report(cluster, before, time.monotonic() - began)
    point = {"n": w, "throughput": timing["events_per_s"], **timing, "hosts": hosts}
    return point | {"assign": assign, "partitions": partitions}


def spread_events(total: int, players: int = 500) -> Iterator[tuple[str, NewEvent]]:
    """Characters spread over every room of the map, each walking to a neighbour and back and
    speaking now and then (``aq bench project`` crowds them into two rooms instead)."""
    codec = event_codec()
    world = load_world()
    rooms = sorted(world.rooms)
    ids = [uuid7() for _ in range(players)]
    homes = [rooms[i % len(rooms)] for i in range(players)]
    walks = [sorted(world.rooms[home].exits.items())[0] for home in homes]
    backs = [
        next((d for d, to in sorted(world.rooms[there].exits.items()) if to == home), "back")
        for home, (_, there) in zip(homes, walks, strict=True)
    ]
    for n in range(total):
        i, step = n % players, n // players
        player, home = ids[i], homes[i]
        direction, there = walks[i]
        back = backs[i]
        event: Event
        if step == 0:
            event = PlayerCreated(player, f"Spread {player[:8]}", home, 100, 100)
        elif step % 3 == 0:
            event = PlayerSaid(home if step % 2 else there, f"step {step}")
        elif step % 2:
            event = PlayerMoved(home, there, direction)
        else:
            event = PlayerMoved(there, home, back)
        yield f"player-{player}", codec.encode(event)


async def _write_backlog(
    store_url: str, events: Iterator[tuple[str, NewEvent]], progress: Progress
) -> None:
    store = open_event_store(store_url)
    try:
        batch: dict[str, list[NewEvent]] = {}
        written = 0
        for written, (stream, event) in enumerate(events, start=1):
            batch.setdefault(stream, []).append(event)
            if written % 5000 == 0:
                for stream_id, chunk in batch.items():
                    await store.append(stream_id, ANY, chunk)
                batch.clear()
        for stream_id, chunk in batch.items():
            await store.append(stream_id, ANY, chunk)
        progress(f"{written} events written")
    finally:
        await store.close()


async def _stream_messages(js: Any) -> int:
    info = await js.stream_info(STREAM)
    return int(info.state.messages)


async def _until_relayed(servers: list[str], events: int, progress: Progress) -> None:
    import nats

    client = await nats.connect(servers)
    try:
        js = client.jetstream()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                if await _stream_messages(js) >= events:
                    progress(f"{events} events relayed to NATS")
                    return
            except Exception:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"the relay did not publish {events} events within 600 s")
    finally:
        await client.close()


async def _remaining(js: Any, partitions: int, events: int) -> int:
    left = 0
    for p in range(partitions):
        try:
            info = await js.consumer_info(STREAM, f"projections-p{p}")
        except Exception:
            return events
        left += int(info.num_pending) + int(info.num_ack_pending)
    return left


_WAITS: Final = (
    "SELECT coalesce(wait_event_type || ':' || wait_event, 'running') AS waiting, count(*)"
    " FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()"
    " GROUP BY 1"
)


async def _drain(
    servers: list[str], partitions: int, events: int, progress: Progress, read_url: str
) -> dict[str, Any]:
    """Time the backlog from 95 % to 5 % left (acknowledged = applied and committed), and
    sample what the read database's busy sessions wait for meanwhile (pg_stat_activity)."""
    import asyncpg
    import nats

    client = await nats.connect(servers)
    sampler = await asyncpg.connect(read_url, timeout=10)
    waits: Counter[str] = Counter()
    try:
        js = client.jetstream()
        high, low = events * 0.95, events * 0.05
        t_high = t_low = 0.0
        left_high = left_low = events
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            left = await _remaining(js, partitions, events)
            now = time.monotonic()
            if not t_high and left <= high:
                t_high, left_high = now, left
            if left <= low:
                t_low, left_low = now, left
                break
            if t_high:
                for row in await sampler.fetch(_WAITS, read_url.rsplit("/", 1)[-1]):
                    waits[row["waiting"]] += row["count"]
            await asyncio.sleep(0.2)
        if not t_low:
            raise RuntimeError("the workers did not drain the backlog within 900 s")
        rate = (left_high - left_low) / max(t_low - t_high, 1e-3)
        progress(f"drained at {rate:.0f} events/s")
        return {
            "events_per_s": round(rate, 1),
            "timed_events": left_high - left_low,
            "timed_s": round(t_low - t_high, 2),
            "read_db_sessions": dict(waits.most_common()),
        }
    finally:
        await sampler.close()
        await client.close()


def efficiency(points: list[dict[str, Any]]) -> None:
    base = points[0]["throughput"] / points[0]["n"] if points and points[0]["throughput"] else 0
    for point in points:
        point["efficiency"] = round(point["throughput"] / (point["n"] * base), 3) if base else None


def run(
    curves: Sequence[str],
    *,
    points: dict[str, Sequence[int]],
    quota: float,
    replica_quota: float,
    load_cpu: float,
    players: int,
    seconds: float,
    events: int,
    progress: Progress,
    backlog: str = "spread",
    assign: str = "fixed",
    partitions: int = 16,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "scaling",
        "machine": machine() | {"cores": os.cpu_count()},
        "quota": quota,
        "replica_quota": replica_quota,
        "load_cpu": load_cpu,
        "backlog": backlog,
        "assign": assign,
        "partitions": partitions,
        "curves": {},
    }
    for curve in curves:
        measured: dict[str, list[dict[str, Any]]] = {}
        if curve == "commands":
            measured["commands"] = [
                measure_commands(
                    n,
                    quota=quota,
                    load_cpu=load_cpu,
                    players=players,
                    seconds=seconds,
                    progress=progress,
                )
                for n in points["commands"]
            ]
        elif curve == "projections":
            measured["projections"] = [
                measure_projections(
                    w,
                    quota=quota,
                    load_cpu=load_cpu,
                    events=events,
                    progress=progress,
                    backlog=backlog,
                    assign=assign,
                    partitions=partitions,
                )
                for w in points["projections"]
            ]
        else:
            for cached in (False, True):
                measured["queries_cached" if cached else "queries_uncached"] = [
                    measure_queries(
                        r,
                        cached=cached,
                        quota=replica_quota,
                        load_cpu=load_cpu,
                        players=players,
                        seconds=seconds,
                        progress=progress,
                    )
                    for r in points["queries"]
                ]
        for name, curve_points in measured.items():
            efficiency(curve_points)
            for point in curve_points:
                point["quota_total"] = round(sum(h["quota"] for h in point["hosts"].values()), 2)
            result["curves"][name] = curve_points
            progress(
                f"{name}: "
                + ", ".join(
                    f"{p['n']}: {p['throughput']}/s ({p['efficiency']})" for p in curve_points
                )
            )
    return result


def plot(results: Sequence[dict[str, Any]], path: Path) -> None:
    """The curves (throughput against hosts, with the line of perfect scaling) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        curves.update(result["curves"])
    titles = {
        "commands": "commands/s (N API hosts + N store shards)",
        "projections": "projection events/s (W worker hosts)",
        "queries_uncached": "uncached queries/s (R read replicas)",
        "queries_cached": "cached queries/s (R read replicas)",
    }
    shown = [name for name in titles if name in curves]
    figure, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.6), squeeze=False)
    for axis, name in zip(axes[0], shown, strict=True):
        points = curves[name]
        n = [p["n"] for p in points]
        axis.plot(n, [p["throughput"] for p in points], "o-", label="measured")
        base = points[0]["throughput"] / points[0]["n"]
        axis.plot(n, [base * x for x in n], "--", color="grey", label="linear")
        for p in points:
            axis.annotate(
                f"{p['efficiency']:.2f}",
                (p["n"], p["throughput"]),
                fontsize=8,
                textcoords="offset points",
                xytext=(4, -10),
            )
        axis.set_title(titles[name], fontsize=9)
        axis.set_xticks(n)
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
