"""Simulated hosts: isolated networks, quotas that hold, cuts that drop, nothing left behind."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adventure_quest.cluster.hosts import CGROUP_ROOT, CONTROLLERS, ClusterError, Host, Network

ECHO = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 9000))
server.listen()
while True:
    conn, _ = server.accept()
    while data := conn.recv(100):
        conn.sendall(data)
    conn.close()
"""


def leftovers(name: str) -> list[str]:
    found = [p.name for p in Path("/run/netns").glob(f"{name}-*")]
    found += [c for c in CONTROLLERS if (CGROUP_ROOT / c / name).exists()]
    return found


@pytest.fixture
def network() -> Iterator[Network]:
    net = Network(f"t{secrets.token_hex(3)}", subnet="10.214.0")
    try:
        net.create()
        yield net
    finally:
        net.destroy()
        assert leftovers(net.name) == []


def echo_server(host: Host, tmp_path: Path) -> None:
    host.spawn([sys.executable, "-c", ECHO, host.address], log=tmp_path / f"{host.name}.log")
    deadline = time.monotonic() + 10
    while not reachable(host, host.address, 9000):
        assert time.monotonic() < deadline, (tmp_path / f"{host.name}.log").read_text()
        time.sleep(0.05)


def reachable(host: Host, address: str, port: int, timeout: float = 1.0) -> bool:
    async def probe() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    return host.inside(probe)


def test_a_host_reaches_the_other_hosts_and_nothing_else(network: Network, tmp_path: Path) -> None:
    one = network.add_host("one", cpu=0.5, memory_mb=256)
    two = network.add_host("two", cpu=0.5, memory_mb=256)
    echo_server(two, tmp_path)
    assert reachable(one, two.address, 9000)
    # The machine's own services listen on its loopback (PostgreSQL 5432, Redis 6379, NATS 4222):
    # a host has a loopback of its own, and no route out of its subnet.
    for port in (5432, 6379, 4222):
        assert not reachable(one, "127.0.0.1", port)
    for address in machine_addresses():
        assert not reachable(one, address, 4222, timeout=0.5)
    routes = one.run(["ip", "route"]).strip().splitlines()
    assert routes == [f"10.214.0.0/24 dev eth0 proto kernel scope link src {one.address}"]


def machine_addresses() -> list[str]:
    shown = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    found = [line.split()[3].split("/")[0] for line in shown.splitlines()]
    assert found, "the machine has no global address to try"
    return found


def test_a_cut_host_drops_every_packet_until_healed(network: Network, tmp_path: Path) -> None:
    one = network.add_host("one", cpu=0.5, memory_mb=256)
    two = network.add_host("two", cpu=0.5, memory_mb=256)
    echo_server(two, tmp_path)

    async def talk() -> list[str]:
        reader, writer = await asyncio.open_connection(two.address, 9000)
        said: list[str] = []
        writer.write(b"a")
        said.append((await asyncio.wait_for(reader.read(1), 2)).decode())
        network.cut(two)
        writer.write(b"b")
        try:
            said.append((await asyncio.wait_for(reader.read(1), 1.5)).decode())
        except TimeoutError:
            said.append("silence")
        network.heal(two)
        said.append((await asyncio.wait_for(reader.read(1), 10)).decode())
        writer.close()
        return said

    # No reset, no unreachable: the cut host simply stops answering, and TCP retransmits once
    # the port forwards again.
    assert one.inside(talk) == ["a", "silence", "b"]


def test_a_hosts_cpu_quota_holds_its_processes(network: Network) -> None:
    busy = network.add_host("busy", cpu=0.2, memory_mb=256)
    began = time.monotonic()
    busy.run(
        [sys.executable, "-c", "import time\nend = time.time() + 2\nwhile time.time() < end: pass"]
    )
    wall = time.monotonic() - began
    # Unconfined, the loop would take a whole core for 2 s.
    assert busy.cpu_seconds() < 0.2 * wall * 1.25 + 0.1
    assert busy.throttled_s() > 1.0


def test_a_frozen_host_runs_nothing_until_thawed(network: Network, tmp_path: Path) -> None:
    host = network.add_host("cold", cpu=0.5, memory_mb=256)
    ticks = tmp_path / "ticks"
    code = (
        f"import time\nwhile True:\n    open({str(ticks)!r}, 'a').write('.')\n    time.sleep(0.02)"
    )
    host.spawn([sys.executable, "-c", code], log=tmp_path / "cold.log")
    time.sleep(0.5)
    host.freeze()
    time.sleep(0.2)
    frozen_at = ticks.stat().st_size
    time.sleep(0.5)
    assert ticks.stat().st_size == frozen_at
    host.thaw()
    time.sleep(0.5)
    assert ticks.stat().st_size > frozen_at


def test_destroying_the_network_kills_what_runs_on_it() -> None:
    net = Network(f"t{secrets.token_hex(3)}", subnet="10.214.0")
    net.create()
    try:
        host = net.add_host("h", cpu=0.5, memory_mb=256)
        sleeper = host.spawn(["sleep", "600"], log=Path("/dev/null"))
        # A grandchild in its own session: only the cgroup still knows it.
        host.run(["sh", "-c", "setsid sleep 600 > /dev/null 2>&1 &"])
    finally:
        net.destroy()
    assert sleeper.poll() is not None
    assert leftovers(net.name) == []
    assert (
        subprocess.run(
            check=False, args=["pgrep", "-f", "^sleep 600$"], capture_output=True
        ).returncode
        == 1
    )


def test_leftovers_of_a_killed_run_are_removed_by_name() -> None:
    name = f"t{secrets.token_hex(3)}"
    net = Network(name, subnet="10.214.0")
    net.create()
    host = net.add_host("h", cpu=0.5, memory_mb=256)
    orphan = host.spawn(["sleep", "600"], log=Path("/dev/null"))
    # Its parent would be gone after a killed run, and init would reap it.
    threading.Thread(target=orphan.wait, daemon=True).start()
    removed = Network.remove_leftovers(name)  # as `aq cluster clean NAME` does
    assert f"namespace {name}-h" in removed
    assert f"namespace {name}-sw" in removed
    assert leftovers(name) == []


def test_without_root_building_hosts_is_refused_with_its_code() -> None:
    # Not measured: the user nobody could not write the coverage data of the test run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    done = subprocess.run(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            str(Path(sys.executable).with_name("aq")),
            "cluster",
            "up",
            "small",
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error [cluster_needs_root]: building hosts needs root")
    assert "Traceback" not in done.stderr


def test_a_host_name_clash_is_a_cluster_error(network: Network) -> None:
    network.add_host("same", cpu=0.5, memory_mb=256)
    with pytest.raises(ClusterError) as raised:
        network.add_host("same", cpu=0.5, memory_mb=256)
    assert raised.value.code == "cluster_command_failed"
