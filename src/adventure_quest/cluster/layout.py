"""A cluster layout: which simulated host runs what, read from a small TOML file.

```toml
name = "aqc"          # prefixes the hosts' namespaces and cgroups
delay_ms = 0.5        # tc netem delay on every packet a host sends
partitions = 16

[defaults]            # every host's quota, unless it says otherwise
cpu = 0.2             # cores (cfs quota)
memory_mb = 768

[hosts.store1]
run = ["store"]       # one event-store shard: a PostgreSQL cluster of its own
[hosts.app1]
run = ["api", "relay", "worker"]
[hosts.load]
run = ["load"]
cpu = 0.5
```

What a host can run: ``store`` (an event-store shard), ``nats`` (a JetStream node; one, or
three or more clustered), ``read-primary`` (the read database), ``read-replica`` (a streaming
replica of it), ``redis`` (the query cache), ``api``, ``relay``, ``worker`` (``aq serve --role``),
and ``load`` (nothing: a host for load generators and checks).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from adventure_quest.cluster.hosts import ClusterError

SERVICES: Final = (
    "store",
    "nats",
    "read-primary",
    "read-replica",
    "redis",
    "api",
    "relay",
    "worker",
    "load",
)
_NAME: Final = re.compile(r"[a-z][a-z0-9]{0,7}")
_HOST: Final = re.compile(r"[a-z][a-z0-9]{0,9}")


@dataclass(frozen=True)
class HostSpec:
    name: str
    run: tuple[str, ...]
    cpu: float
    memory_mb: int


@dataclass(frozen=True)
class Layout:
    name: str
    hosts: tuple[HostSpec, ...]
    delay_ms: float = 0.5
    partitions: int = 16

    def running(self, service: str) -> list[HostSpec]:
        return [host for host in self.hosts if service in host.run]

    @property
    def cpu_total(self) -> float:
        return sum(host.cpu for host in self.hosts)


def read_layout(path: Path) -> Layout:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ClusterError("invalid_layout", f"cannot read the layout {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ClusterError("invalid_layout", f"{path} is not valid TOML: {error}") from None
    return layout_from(data, source=str(path))


def layout_from(data: dict[str, Any], *, source: str = "the layout") -> Layout:
    """A checked Layout, or a ClusterError (``invalid_layout``) naming what is wrong."""

    def bad(message: str) -> ClusterError:
        return ClusterError("invalid_layout", f"{source}: {message}")

    unknown = set(data) - {"name", "delay_ms", "partitions", "defaults", "hosts"}
    if unknown:
        raise bad(f"unknown keys {sorted(unknown)}")
    name = data.get("name", "aqc")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise bad(f"name {name!r}: 1 to 8 lowercase letters and digits, starting with a letter")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise bad("[defaults] must be a table")
    hosts_table = data.get("hosts")
    if not isinstance(hosts_table, dict) or not hosts_table:
        raise bad("no [hosts.NAME] tables")
    hosts = tuple(_host(host_name, spec, defaults, bad) for host_name, spec in hosts_table.items())
    layout = Layout(
        name=name,
        hosts=hosts,
        delay_ms=_number(data.get("delay_ms", 0.5), "delay_ms", 0, 1000, bad),
        partitions=int(_number(data.get("partitions", 16), "partitions", 1, 1024, bad)),
    )
    _check_roles(layout, bad)
    return layout


def _host(name: str, spec: Any, defaults: dict[str, Any], bad: Any) -> HostSpec:
    if not _HOST.fullmatch(name):
        raise bad(f"host {name!r}: 1 to 10 lowercase letters and digits, starting with a letter")
    if not isinstance(spec, dict):
        raise bad(f"[hosts.{name}] must be a table")
    unknown = set(spec) - {"run", "cpu", "memory_mb"}
    if unknown:
        raise bad(f"[hosts.{name}]: unknown keys {sorted(unknown)}")
    run = spec.get("run", [])
    if not isinstance(run, list) or not all(isinstance(s, str) for s in run):
        raise bad(f"[hosts.{name}] run must be a list of service names")
    wrong = [s for s in run if s not in SERVICES]
    if wrong:
        raise bad(f"[hosts.{name}] runs {wrong}: a host runs some of {', '.join(SERVICES)}")
    if len(set(run)) != len(run):
        raise bad(f"[hosts.{name}] names a service twice")
    cpu = _number(spec.get("cpu", defaults.get("cpu", 0.2)), f"hosts.{name}.cpu", 0.01, 64, bad)
    memory = spec.get("memory_mb", defaults.get("memory_mb", 768))
    memory_mb = int(_number(memory, f"hosts.{name}.memory_mb", 64, 1 << 20, bad))
    return HostSpec(name=name, run=tuple(run), cpu=cpu, memory_mb=memory_mb)


def _number(value: Any, what: str, low: float, high: float, bad: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise bad(f"{what} = {value!r}: a number from {low} to {high}")
    return float(value)


def _check_roles(layout: Layout, bad: Any) -> None:
    count = {service: len(layout.running(service)) for service in SERVICES}
    if count["store"] == 0:
        raise bad("no host runs `store` (the event store needs at least one shard)")
    if count["nats"] == 2:
        raise bad("two `nats` hosts cannot elect a leader when one is lost: run one, or three")
    if (count["relay"] or count["worker"] or count["api"]) and not count["nats"]:
        raise bad("`api`, `relay` and `worker` need a `nats` host (the queue they share)")
    if (count["api"] or count["worker"]) and count["read-primary"] != 1:
        raise bad("`api` and `worker` need exactly one `read-primary` host (the read database)")
    if count["read-replica"] and not count["read-primary"]:
        raise bad("`read-replica` needs a `read-primary` host")
    if count["read-primary"] > 1:
        raise bad("one `read-primary` host at most")
    if count["redis"] > 1:
        raise bad("one `redis` host at most")
