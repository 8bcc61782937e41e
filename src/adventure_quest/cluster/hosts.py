"""Simulated hosts on one machine: network namespaces on a private bridge, with cgroup quotas.

Each host is a network namespace with one interface, ``eth0``, addressed on the cluster's subnet
and on nothing else (no default route: a host reaches the other hosts and its own loopback, never
the machine's services). The hosts' interfaces are veth pairs whose other ends are ports of a
bridge in a namespace of its own (the switch), so the machine's own namespace is not on the
network either. Each host has a cgroup (v1) with a CPU quota (``cpu.cfs_quota_us``) and a memory
limit, so that a figure measured on a host is bound by the host, not by the machine.

Faults are made where a real network and real hosts make them:

* ``cut``/``heal``: the host's bridge port is disabled, so every packet to and from it is dropped
  silently (no link goes down; the host's peers see a host that stopped answering);
* ``freeze``/``thaw``: every process of the host stops at once (the cgroup freezer);
* processes are killed with ``kill -9``.

``tc netem`` delays every packet a host sends, where the kernel has it (``sch_netem``); a kernel
without it (``Specified qdisc kind is unknown``) runs the cluster without delay and says so in
``Network.delay_ms`` (None).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

T = TypeVar("T")

CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
#: The cgroup v1 controllers a host uses: quota, accounting, memory limit, freezer.
CONTROLLERS: Final = ("cpu", "cpuacct", "memory", "freezer")
#: A short period: a host waits at most this long for its next share (100 ms made latency)
CFS_PERIOD_US: Final = 10_000
_CLONE_NEWNET: Final = 0x40000000


class ClusterError(Exception):
    """The cluster cannot be built or driven; ``code`` is stable, the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_prerequisites() -> None:
    """Refuse, with what is missing, unless this process can build hosts."""
    if os.geteuid() != 0:
        raise ClusterError(
            "cluster_needs_root",
            "building hosts needs root (network namespaces, a bridge, cgroups): run as root",
        )
    missing = [tool for tool in ("ip", "tc", "bridge") if shutil.which(tool) is None]
    if missing:
        raise ClusterError(
            "cluster_tool_missing",
            f"{', '.join(missing)} not found: install iproute2 (apt-get install iproute2)",
        )
    absent = [c for c in CONTROLLERS if not (CGROUP_ROOT / c / "cgroup.procs").exists()]
    if absent:
        raise ClusterError(
            "cluster_cgroup_missing",
            f"the cgroup v1 controllers {', '.join(absent)} are not mounted under {CGROUP_ROOT}"
            " (each host's CPU quota, memory limit and freezer need them)",
        )


def ip(*args: str, namespace: str | None = None) -> str:
    """Run ``ip`` (in ``namespace``); its output, or a ClusterError with what it printed."""
    return _run(["ip", *(["-n", namespace] if namespace else []), *args])


def _run(argv: Sequence[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise ClusterError(
            "cluster_command_failed",
            f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}",
        )
    return done.stdout


@dataclass
class Host:
    """One simulated host: a namespace, an address, a cgroup, and the processes started in it."""

    name: str
    namespace: str
    address: str
    port: str  # the switch-side veth
    cgroup: str  # relative to each controller's root
    cpu: float
    memory_mb: int
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` on this host (its namespace and cgroup), output into ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                self.confined(argv, user),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def confined(self, argv: Sequence[str], user: str | None) -> list[str]:
        """``argv`` run in the host's cgroups and namespace (as ``user``), by exec: same pid.

        A shell joins the cgroups and then becomes ``ip netns exec``, which becomes ``argv``
        (a ``preexec_fn`` would do the same in Python, which is unsafe in a threaded process).
        """
        join = "; ".join(
            f"echo $$ > {CGROUP_ROOT / controller / self.cgroup / 'cgroup.procs'}"
            for controller in CONTROLLERS
        )
        command = ["sh", "-c", f'{join}; exec "$@"', "sh", "ip", "netns", "exec", self.namespace]
        if user is not None:
            command += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
        return [*command, *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 120.0,
        user: str | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Run ``argv`` on this host to its end; its output (a ClusterError if it failed)."""
        done = subprocess.run(
            self.confined(argv, user),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
        if done.returncode != 0:
            raise ClusterError(
                "cluster_command_failed",
                f"{self.name}: `{' '.join(argv)}` failed ({done.returncode}):"
                f" {(done.stderr or done.stdout).strip()[-2000:]}",
            )
        return done.stdout

    def inside(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run the coroutine ``make()`` on an event loop whose sockets are on this host.

        A network namespace belongs to a thread: a thread that entered it creates every socket
        there. The loop runs on such a thread until the coroutine ends.
        """
        result: list[T] = []
        failure: list[BaseException] = []

        def body() -> None:
            try:
                _enter_namespace(self.namespace)
                result.append(asyncio.run(make()))
            except BaseException as error:  # handed to the calling thread
                failure.append(error)

        thread = threading.Thread(target=body, name=f"on-{self.name}", daemon=True)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return result[0]

    def cpu_seconds(self) -> float:
        """CPU time used by every process ever run on this host."""
        usage = CGROUP_ROOT / "cpuacct" / self.cgroup / "cpuacct.usage"
        return int(usage.read_text()) / 1e9

    def throttled_s(self) -> float:
        """How long the host's quota held its processes back."""
        for line in (CGROUP_ROOT / "cpu" / self.cgroup / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "throttled_time":
                return int(value) / 1e9
        return 0.0

    def limit_cpu(self, cores: float) -> None:
        """Set the host's CPU quota (``cores`` of CPU time per unit of wall time)."""
        # The kernel's least quota is 1 ms: a small share gets a longer period.
        period = max(CFS_PERIOD_US, math.ceil(1000 / cores))
        cpu = CGROUP_ROOT / "cpu" / self.cgroup
        _write(cpu / "cpu.cfs_quota_us", "-1")  # a new period must not be below the old quota
        _write(cpu / "cpu.cfs_period_us", str(period))
        _write(cpu / "cpu.cfs_quota_us", str(round(cores * period)))

    def freeze(self) -> None:
        _write(CGROUP_ROOT / "freezer" / self.cgroup / "freezer.state", "FROZEN")

    def thaw(self) -> None:
        _write(CGROUP_ROOT / "freezer" / self.cgroup / "freezer.state", "THAWED")

    def kill_all(self) -> None:
        """SIGKILL every process of the host: each one's session, then whatever is in the cgroup."""
        self.thaw()
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for _ in range(50):
            pids = _pids(CGROUP_ROOT / "cpu" / self.cgroup)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.processes.clear()


def _enter_namespace(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{namespace}") as handle:
        if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise ClusterError(
                "cluster_command_failed", f"setns({namespace}): {os.strerror(errno)}"
            )


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as error:
        raise ClusterError(
            "cluster_command_failed", f"writing {value} to {path}: {error}"
        ) from None


def _pids(cgroup: Path) -> list[int]:
    try:
        return [int(line) for line in (cgroup / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


class Network:
    """The switch (a bridge in its own namespace) and the hosts plugged into it.

    ``name`` prefixes every namespace (``<name>-sw``, ``<name>-<host>``) and cgroup (``<name>/``),
    so that ``Network.remove_leftovers(name)`` can take away what a killed run left behind.
    """

    def __init__(self, name: str, subnet: str = "10.213.0", delay_ms: float = 0.5) -> None:
        self.name = name
        self.subnet = subnet
        self.requested_delay_ms = delay_ms
        #: The delay applied to every packet a host sends; None where the kernel lacks netem.
        self.delay_ms: float | None = None if delay_ms > 0 else 0.0
        self.delay_refused = ""
        self.hosts: dict[str, Host] = {}
        self.switch = f"{name}-sw"

    def create(self) -> None:
        check_prerequisites()
        self.remove_leftovers(self.name)
        _run(["ip", "netns", "add", self.switch])
        ip("link", "add", "br0", "type", "bridge", namespace=self.switch)
        ip("link", "set", "br0", "up", namespace=self.switch)
        for controller in CONTROLLERS:
            (CGROUP_ROOT / controller / self.name).mkdir(exist_ok=True)

    def add_host(self, name: str, *, cpu: float, memory_mb: int) -> Host:
        index = len(self.hosts) + 1
        if index > 250:
            raise ClusterError("invalid_layout", "a cluster has at most 250 hosts")
        host = Host(
            name=name,
            namespace=f"{self.name}-{name}",
            address=f"{self.subnet}.{index}",
            port=f"p{index}",
            cgroup=f"{self.name}/{name}",
            cpu=cpu,
            memory_mb=memory_mb,
        )
        _run(["ip", "netns", "add", host.namespace])
        ip(
            "link",
            "add",
            host.port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            host.namespace,
        )
        ip("link", "set", host.port, "netns", self.switch)
        ip("link", "set", host.port, "master", "br0", "up", namespace=self.switch)
        ip("addr", "add", f"{host.address}/24", "dev", "eth0", namespace=host.namespace)
        ip("link", "set", "eth0", "up", namespace=host.namespace)
        ip("link", "set", "lo", "up", namespace=host.namespace)
        self._delay(host)
        self._limit(host)
        self.hosts[name] = host
        return host

    def _delay(self, host: Host) -> None:
        if self.requested_delay_ms <= 0 or (self.delay_refused and self.delay_ms is None):
            return
        argv = ["tc", "qdisc", "add", "dev", "eth0", "root", "netem"]
        argv += ["delay", f"{self.requested_delay_ms}ms"]
        try:
            _run(["ip", "netns", "exec", host.namespace, *argv])
        except ClusterError as error:
            self.delay_ms, self.delay_refused = None, str(error)
        else:
            self.delay_ms = self.requested_delay_ms

    def _limit(self, host: Host) -> None:
        for controller in CONTROLLERS:
            (CGROUP_ROOT / controller / host.cgroup).mkdir(exist_ok=True)
        host.limit_cpu(host.cpu)
        memory = CGROUP_ROOT / "memory" / host.cgroup
        _write(memory / "memory.limit_in_bytes", str(host.memory_mb * 1024 * 1024))

    def cut(self, host: Host) -> None:
        """Drop every packet to and from ``host`` (its bridge port disabled)."""
        _run(["bridge", "-n", self.switch, "link", "set", "dev", host.port, "state", "0"])

    def heal(self, host: Host) -> None:
        _run(["bridge", "-n", self.switch, "link", "set", "dev", host.port, "state", "3"])

    def destroy(self) -> None:
        """Kill every process of every host, then remove the namespaces and cgroups."""
        for host in self.hosts.values():
            host.kill_all()
        self.hosts.clear()
        self.remove_leftovers(self.name)

    @staticmethod
    def remove_leftovers(name: str) -> list[str]:
        """Remove the namespaces and cgroups named ``name`` (a killed run's); what was removed."""
        removed: list[str] = []
        namespaces = Path("/run/netns")
        for path in sorted(namespaces.glob(f"{name}-*")) if namespaces.exists() else []:
            for pid in _namespace_pids(path.name):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ClusterError):
                _run(["ip", "netns", "del", path.name])
                removed.append(f"namespace {path.name}")
        for controller in CONTROLLERS:
            top = CGROUP_ROOT / controller / name
            if not top.exists():
                continue
            for group in sorted((p for p in top.iterdir() if p.is_dir()), reverse=True):
                _empty(group)
                _remove(group)
            _empty(top)
            if _remove(top):
                removed.append(f"cgroup {controller}/{name}")
        return removed


def _namespace_pids(namespace: str) -> list[int]:
    with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
        return [int(pid) for pid in _run(["ip", "netns", "pids", namespace]).split()]
    return []


def _remove(cgroup: Path) -> bool:
    """rmdir, waiting a little for killed processes to be reaped (they keep it busy till then)."""
    for _ in range(40):
        try:
            cgroup.rmdir()
        except FileNotFoundError:
            return False
        except OSError:
            time.sleep(0.05)
        else:
            return True
    return False


def _empty(cgroup: Path) -> None:
    with contextlib.suppress(OSError):
        (cgroup / "freezer.state").write_text("THAWED")
    for _ in range(50):
        pids = _pids(cgroup)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
