"""Layouts: what a host may run, and a clear refusal (invalid_layout) for anything else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adventure_quest.cli.cluster import bundled_layouts, load_layout
from adventure_quest.cluster.hosts import ClusterError
from adventure_quest.cluster.layout import layout_from

WHOLE: dict[str, Any] = {
    "name": "aqx",
    "defaults": {"cpu": 0.3},
    "hosts": {
        "s1": {"run": ["store"]},
        "n1": {"run": ["nats"]},
        "r1": {"run": ["read-primary", "redis"]},
        "r2": {"run": ["read-replica"], "cpu": 0.1, "memory_mb": 512},
        "a1": {"run": ["api", "relay", "worker"]},
    },
}


def test_a_whole_layout_reads_with_its_defaults_and_overrides() -> None:
    layout = layout_from(WHOLE)
    assert [h.name for h in layout.running("read-replica")] == ["r2"]
    assert layout.hosts[3].cpu == 0.1
    assert layout.hosts[3].memory_mb == 512
    assert layout.hosts[0].cpu == 0.3
    assert layout.hosts[0].memory_mb == 768
    assert layout.cpu_total == pytest.approx(0.3 * 4 + 0.1)
    assert (layout.delay_ms, layout.partitions) == (0.5, 16)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"name": "Bad-Name"}, "name 'Bad-Name'"),
        ({"hosts": {}}, "no [hosts.NAME] tables"),
        ({"colour": "red"}, "unknown keys ['colour']"),
        ({"hosts": {"s1": {"run": ["stor"]}}}, "runs ['stor']"),
        ({"hosts": {"s1": {"run": ["store", "store"]}}}, "names a service twice"),
        ({"hosts": {"s1": {"run": ["store"], "cpu": 0}}}, "hosts.s1.cpu = 0"),
        ({"hosts": {"s1": {"run": ["store"], "cpu": True}}}, "hosts.s1.cpu = True"),
        ({"hosts": {"s1": {"run": ["api"]}}}, "no host runs `store`"),
        ({"hosts": {"s1": {"run": ["store", "worker"]}}}, "need a `nats` host"),
        ({"hosts": {"s1": {"run": ["store", "read-primary", "api"]}}}, "need a `nats` host"),
        ({"hosts": {"s1": {"run": ["store", "nats", "api"]}}}, "exactly one `read-primary`"),
        ({"hosts": {"s1": {"run": ["store", "read-replica"]}}}, "needs a `read-primary`"),
        (
            {"hosts": {"s1": {"run": ["store", "nats"]}, "s2": {"run": ["nats"]}}},
            "two `nats` hosts",
        ),
        ({"hosts": {"Host_1": {"run": ["store"]}}}, "host 'Host_1'"),
        ({"partitions": 0}, "partitions = 0"),
    ],
)
def test_a_wrong_layout_is_refused_saying_what_is_wrong(change: dict[str, Any], says: str) -> None:
    with pytest.raises(ClusterError) as raised:
        layout_from(WHOLE | change)
    assert raised.value.code == "invalid_layout"
    assert says in str(raised.value)


def test_every_bundled_layout_is_valid() -> None:
    names = bundled_layouts()
    assert "small" in names
    for name in names:
        assert load_layout(name).hosts


def test_aq_cluster_check_refuses_a_bad_layout_file_with_its_code(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("name = 'aqb'\n[hosts.s1]\nrun = ['store', 'teapot']\n")
    aq = str(Path(sys.executable).with_name("aq"))
    done = subprocess.run(
        [aq, "cluster", "check", str(broken)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "error [invalid_layout]:" in done.stderr
    assert "teapot" in done.stderr
    missing = subprocess.run(
        [aq, "cluster", "check", str(tmp_path / "nope.toml")],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "bundled: " in missing.stderr


def test_aq_cluster_up_serves_until_sigterm_then_leaves_nothing(tmp_path: Path) -> None:
    import json
    import signal

    from tests.cluster.test_hosts import leftovers

    aq = str(Path(sys.executable).with_name("aq"))
    with (tmp_path / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [aq, "cluster", "up", "small"], stdout=subprocess.PIPE, stderr=log, text=True
        )
    try:
        assert up.stdout is not None
        started = json.loads(up.stdout.readline())  # printed once every API is ready
        assert started["api"] == ["http://10.213.0.4:8000"]
        assert started["env"]["AQ_STORE"] == "postgresql://postgres@10.213.0.1:5432/aq"
        assert leftovers("aqsmall") != []
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=60) == 0, (tmp_path / "up.log").read_text()
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stdout is not None:
            up.stdout.close()
    assert leftovers("aqsmall") == []
    assert "stopped; hosts removed" in (tmp_path / "up.log").read_text()
