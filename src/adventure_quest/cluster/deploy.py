"""A running deployment of Adventure Quest across the simulated hosts of a layout.

``Cluster(layout).start()`` builds the hosts, starts the servers in the order they depend on
each other (event-store shards, NATS, the read primary, its replicas, Redis; then ``aq db
upgrade``; then relays, workers and API processes) and waits until every API answers
``/readyz``. ``stop()`` kills everything on every host and removes the hosts; ``with Cluster(...)``
stops it however the block ends, and a SIGTERM or SIGINT to the process ends the block.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Final

from adventure_quest.cluster import services
from adventure_quest.cluster.hosts import Host, Network
from adventure_quest.cluster.layout import Layout


@dataclass
class Process:
    """An ``aq`` or server process the cluster started: where it runs and what it is."""

    host: Host
    role: str
    process: subprocess.Popen[bytes]
    directory: Path
    extra: tuple[str, ...] = ()


@dataclass
class Endpoints:
    """The addresses the deployment's parts know each other by (its ``AQ_*`` settings)."""

    stores: list[str] = field(default_factory=list)
    nats: list[str] = field(default_factory=list)
    read_primary: str = ""
    read_replicas: list[str] = field(default_factory=list)
    cache: str = "memory://"
    apis: list[str] = field(default_factory=list)


#: Each host's quota while the deployment starts (initdb, imports, table creation): starting is
#: not what a figure measures. Every host gets its own quota once every API answers /readyz.
SETUP_CPU: Final = 0.5


class Cluster:
    """A layout's hosts, its servers and its ``aq`` processes, started and stopped as one."""

    def __init__(
        self,
        layout: Layout,
        *,
        workdir: Path | None = None,
        progress: Callable[[str], None] = lambda line: None,
        extra_env: dict[str, str] | None = None,
        held: tuple[str, ...] = (),
    ) -> None:
        self.layout = layout
        self.network = Network(layout.name, delay_ms=layout.delay_ms)
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"aq-cluster-{layout.name}-"))
        self.progress = progress
        self.endpoints = Endpoints()
        self.processes: list[Process] = []
        #: The servers, by host and service (``store``, ``nats``, ``read-primary``...).
        self.servers: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self.admin_token = secrets.token_urlsafe(16)
        self.extra_env = dict(extra_env or {})
        #: Roles the layout places but ``start`` leaves to the caller (``start_role``).
        self.held = held
        self._started_at = 0.0

    def host(self, name: str) -> Host:
        return self.network.hosts[name]

    def hosts_running(self, service: str) -> list[Host]:
        return [self.host(spec.name) for spec in self.layout.running(service)]

    def __enter__(self) -> Cluster:
        self._previous = {
            sig: signal.signal(sig, _interrupted) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def start(self) -> None:
        self._started_at = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)  # the postgres user walks through it to its own directories
        self.network.create()
        for spec in self.layout.hosts:
            host = self.network.add_host(spec.name, cpu=spec.cpu, memory_mb=spec.memory_mb)
            host.limit_cpu(max(spec.cpu, SETUP_CPU))
        if self.network.delay_ms is None:
            refused = self.network.delay_refused
            self.progress(f"no delay between hosts: this kernel has no tc netem ({refused})")
        self.progress(
            f"{len(self.layout.hosts)} hosts on {self.network.subnet}.0/24,"
            f" {self.layout.cpu_total:.2f} cores of quota in all"
        )
        self._start_servers()
        self._upgrade()
        for role in ("relay", "worker", "api"):
            for host in [] if role in self.held else self.hosts_running(role):
                self.start_role(host, role)
        for host in self.network.hosts.values():
            host.limit_cpu(host.cpu)
        self.progress(f"cluster up in {time.monotonic() - self._started_at:.1f} s")

    def _start_servers(self) -> None:
        for host in self.hosts_running("store"):
            server = services.start_postgres(host, self._dir(host, "store"), services.STORE_PORT)
            self.servers[host.name, "store"] = server
            services.create_database(host, services.STORE_PORT, services.STORE_DB)
            self.endpoints.stores.append(host.address)
            self.progress(f"{host.name}: event-store shard on {host.address}:{services.STORE_PORT}")
        nats = self.hosts_running("nats")
        for host in nats:
            peers = [other.address for other in nats if other is not host]
            server = services.start_nats(host, self._dir(host, "nats"), peers, self.layout.name)
            self.servers[host.name, "nats"] = server
            self.endpoints.nats.append(host.address)
        if nats:
            self.progress(f"NATS JetStream on {', '.join(self.endpoints.nats)}")
        for host in self.hosts_running("read-primary"):
            server = services.start_postgres(host, self._dir(host, "read"), services.READ_PORT)
            self.servers[host.name, "read-primary"] = server
            services.create_database(host, services.READ_PORT, services.READ_DB)
            self.endpoints.read_primary = host.address
            self.progress(f"{host.name}: read database on {host.address}:{services.READ_PORT}")
        for host in self.hosts_running("read-replica"):
            primary = self.endpoints.read_primary
            self.servers[host.name, "read-replica"] = services.start_replica(
                host, self._dir(host, "replica"), primary, services.READ_PORT
            )
            self.endpoints.read_replicas.append(host.address)
            self.progress(f"{host.name}: read replica of {primary}")
        for host in self.hosts_running("redis"):
            self.servers[host.name, "redis"] = services.start_redis(host, self._dir(host, "redis"))
            self.endpoints.cache = f"redis://{host.address}:{services.REDIS_PORT}/0"

    def _upgrade(self) -> None:
        host = next(iter(self.network.hosts.values()))
        argv = [*services.aq_command(), "db", "upgrade"]
        argv += ["--data-dir", str(self._dir(host, "upgrade"))]
        host.run(argv, timeout=300, env=services.aq_env(self.env()))
        self.progress("tables created (aq db upgrade)")

    def env(self) -> dict[str, str]:
        """The ``AQ_*`` settings every ``aq`` process of the deployment runs with."""
        ends = self.endpoints
        env = {
            "AQ_STORE": ",".join(
                f"postgresql://postgres@{a}:{services.STORE_PORT}/{services.STORE_DB}"
                for a in ends.stores
            ),
            "AQ_PARTITIONS": str(self.layout.partitions),
            "AQ_CACHE": ends.cache,
            "AQ_ADMIN_TOKEN": self.admin_token,
            "AQ_RATE_LIMITS": "off",
            "AQ_LOG_LEVEL": "warning",
        }
        if ends.nats:
            # Three nodes or more: the stream is replicated three times (R3).
            replicas = "?replicas=3" if len(ends.nats) >= 3 else ""
            servers = ",".join(f"{a}:{services.NATS_PORT}" for a in ends.nats)
            env["AQ_QUEUE"] = f"nats://{servers}{replicas}"
        if ends.read_primary:
            env["AQ_READ_DB"] = (
                f"postgresql://postgres@{ends.read_primary}:{services.READ_PORT}/{services.READ_DB}"
            )
        if ends.read_replicas:
            env["AQ_READ_REPLICAS"] = ",".join(
                f"postgresql://postgres@{a}:{services.READ_PORT}/{services.READ_DB}"
                for a in ends.read_replicas
            )
        return env | self.extra_env

    def start_role(self, host: Host, role: str, *extra: str) -> Process:
        """Start ``aq serve --role ROLE`` on ``host`` (a worker shares partitions: ``auto``)."""
        arguments = tuple(extra) or (("--partitions", "auto") if role == "worker" else ())
        index = sum(1 for p in self.processes if p.host is host and p.role == role)
        directory = self._dir(host, f"{role}{index}")
        process = services.start_aq(host, directory, role, self.env(), extra=arguments)
        started = Process(host, role, process, directory, arguments)
        self.processes.append(started)
        if role == "api":
            self.endpoints.apis.append(f"http://{host.address}:{services.API_PORT}")
        self.progress(f"{host.name}: aq {role} (pid {process.pid})")
        return started

    def restart(self, started: Process) -> Process:
        """Start again a process of the deployment that was killed."""
        self.processes.remove(started)
        if started.role == "api":
            self.endpoints.apis.remove(f"http://{started.host.address}:{services.API_PORT}")
        return self.start_role(started.host, started.role, *started.extra)

    def restart_read_primary(self) -> None:
        """Restart the read database's server (a fast shutdown, then a start)."""
        host = self.hosts_running("read-primary")[0]
        running = self.servers[host.name, "read-primary"]
        self.servers[host.name, "read-primary"] = services.restart_postgres(
            host, self._dir(host, "read"), services.READ_PORT, running
        )

    def nats_servers(self) -> list[str]:
        return [f"nats://{a}:{services.NATS_PORT}" for a in self.endpoints.nats]

    def aq_processes(self, role: str | None = None) -> list[Process]:
        return [p for p in self.processes if role is None or p.role == role]

    def _dir(self, host: Host, what: str) -> Path:
        path = self.workdir / host.name / what
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stop(self, *, keep_workdir: bool = False) -> None:
        self.network.destroy()
        self.processes.clear()
        if not keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
