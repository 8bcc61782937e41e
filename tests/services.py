"""Backing services of a test's own, on spare loopback ports, that the test may stop or kill.

The shared servers (PostgreSQL 5432, Redis 6379, NATS 4222) are never stopped by a test; a test
that takes a service away starts its own here (PostgreSQL: tests/pg_replica.lone_server). Each
is stopped when its block ends, whatever happened in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import nats.errors
import redis
from nats.js import api

NATS_SERVER = "/usr/sbin/nats-server"
#: The name of the connections a NatsCluster makes to look at itself.
ADMIN = "aq-test-admin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server without persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.directory)]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self._process.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._process = None


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[RedisServer]:
    server = RedisServer(directory)
    try:
        server.start()
        yield server
    finally:
        server.kill()


class NatsServer:
    """A nats-server with JetStream of our own, that a test can stop, kill and start again."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        command += ["-js", "-sd", str(self.store), "-l", str(self.store / "server.log")]
        self._process = subprocess.Popen(command)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server exited: {(self.store / 'server.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.02)
            else:
                return
        raise RuntimeError(f"nats-server did not listen on port {self.port} within 10 s")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the server (SIGTERM: a clean shutdown; SIGKILL: a crash of the process)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(sig)
            self._process.wait(timeout=10)
        self._process = None


@contextlib.contextmanager
def private_nats(store: Path) -> Iterator[NatsServer]:
    server = NatsServer(store)
    try:
        server.start()
        yield server
    finally:
        server.stop(signal.SIGKILL)


class NatsNode:
    """One server of a NatsCluster: its name, client port and store, killed and restarted."""

    def __init__(self, name: str, store: Path, cluster_port: int) -> None:
        self.name = name
        self.store = store
        self.port = free_port()
        self.cluster_port = cluster_port
        self.monitor_port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.config = store / "server.conf"
        self._process: subprocess.Popen[bytes] | None = None
        self._cluster, self._routes = "", list[int]()

    def write_config(self, cluster: str, routes: list[int]) -> None:
        self._cluster, self._routes = cluster, routes
        self.store.mkdir(parents=True, exist_ok=True)
        route_list = ", ".join(f'"nats-route://127.0.0.1:{port}"' for port in routes)
        self.config.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.monitor_port}\n"
            f'jetstream {{ store_dir: "{self.store / "js"}" }}\n'
            f"cluster {{\n  name: {cluster}\n  listen: 127.0.0.1:{self.cluster_port}\n"
            f"  routes: [{route_list}]\n}}\n"
        )

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        # A port free_port() picked can be taken by another process before the server binds
        # it: the client and monitoring ports are nobody else's to know, so pick new ones.
        for attempt in range(3):
            try:
                self._start()
                return
            except RuntimeError as error:
                if "exited" not in str(error) or attempt == 2:  # its log may be empty
                    raise
                self.port, self.monitor_port = free_port(), free_port()
                self.url = f"nats://127.0.0.1:{self.port}"
                self.write_config(self._cluster, self._routes)

    def _start(self) -> None:
        log = self.store / "server.log"
        log.unlink(missing_ok=True)
        self._process = subprocess.Popen([NATS_SERVER, "-c", str(self.config), "-l", str(log)])
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited: {log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.02)
            else:
                return
        raise RuntimeError(f"nats-server {self.name} did not listen on {self.port} within 10 s")

    def meta_leader(self) -> str:
        """The server this node takes for JetStream's meta leader ("" while there is none)."""
        return str(self._monitor("jsz").get("meta_cluster", {}).get("leader", ""))

    def clients(self) -> list[str]:
        """The names of the node's client connections, but the cluster's own (ADMIN)."""
        connections: list[dict[str, Any]] = self._monitor("connz").get("connections") or []
        return [c.get("name", "") for c in connections if c.get("name") != ADMIN]

    def _monitor(self, endpoint: str) -> dict[str, Any]:
        address = f"http://127.0.0.1:{self.monitor_port}/{endpoint}"
        with urllib.request.urlopen(address, timeout=2.0) as answer:
            found: dict[str, Any] = json.load(answer)
        return found

    def stop(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Stop the server (SIGKILL by default: a crash, or the loss of its host)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(sig)
            self._process.wait(timeout=10)
        self._process = None


class NatsCluster:
    """Three (or ``size``) nats-servers with JetStream, routed to each other as one cluster."""

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.nodes = [
            NatsNode(f"n{index}", directory / f"n{index}", free_port()) for index in range(size)
        ]
        for node in self.nodes:
            routes = [other.cluster_port for other in self.nodes if other is not node]
            node.write_config("aq", routes)

    @property
    def url(self) -> str:
        """Every node, as a queue URL lists them."""
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.wait_for_meta_leader()

    def wait_for_meta_leader(self, seconds: float = 30.0) -> None:
        """Until every running node names the same JetStream meta leader, a running one."""
        deadline = time.monotonic() + seconds
        running = [node for node in self.nodes if node.running]
        while True:
            with contextlib.suppress(OSError):
                leaders = {node.meta_leader() for node in running}
                if len(leaders) == 1 and leaders <= {node.name for node in running}:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"no JetStream meta leader within {seconds} s")
            time.sleep(0.1)

    async def stream_info(self, stream: str) -> api.StreamInfo:
        """The stream as a running node reports it (connection of its own)."""
        client = await nats.connect(
            [node.url for node in self.nodes if node.running], name=ADMIN, allow_reconnect=False
        )
        try:
            return await client.jetstream(timeout=5.0).stream_info(stream)
        finally:
            await client.close()

    async def wait_until_current(self, stream: str, seconds: float = 30.0) -> api.StreamInfo:
        """Until the stream has a leader and every replica on a running node is current."""
        deadline = time.monotonic() + seconds
        while True:
            with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                info = await self.stream_info(stream)
                cluster = info.cluster
                running = {node.name for node in self.nodes if node.running}
                wanted = info.config.num_replicas or 1
                peers = cluster.replicas or [] if cluster is not None else []
                if (
                    cluster is not None
                    and cluster.leader in running
                    and len(peers) + 1 == wanted
                    and all(peer.current for peer in peers if peer.name in running)
                ):
                    return info
            if time.monotonic() > deadline:
                raise RuntimeError(f"stream {stream} had no leader and current replicas")
            await asyncio.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def private_nats_cluster(directory: Path, size: int = 3) -> Iterator[NatsCluster]:
    """A running cluster whose JetStream has a meta leader; every node killed on the way out."""
    cluster = NatsCluster(directory, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
