"""The scaling benchmark's layouts, efficiency and picture (the runs themselves: aq bench)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adventure_quest.app.world_loader import load_world
from adventure_quest.bench import scaling
from adventure_quest.domain.events import PlayerCreated, PlayerMoved, PlayerSaid


@pytest.mark.parametrize("n", [1, 2, 4])
def test_every_point_of_every_curve_stays_below_the_machine(n: int) -> None:
    layouts = [
        scaling.commands_layout(n, 0.15, 0.4),
        scaling.projections_layout(n, 0.15, 0.4),
        scaling.queries_layout(min(n, 3), 0.03, 0.4, cached=True),
    ]
    for layout in layouts:
        assert layout.cpu_total < (os.cpu_count() or 2)
    commands = layouts[0]
    assert len(commands.running("api")) == len(commands.running("store")) == n
    assert {h.cpu for h in commands.hosts if "api" in h.run or "store" in h.run} == {0.15}
    assert len(layouts[1].running("worker")) == n
    assert len(layouts[2].running("read-replica")) == min(n, 3)


def test_efficiency_is_throughput_over_n_times_the_first_point() -> None:
    points: list[dict[str, Any]] = [
        {"n": 1, "throughput": 100.0},
        {"n": 2, "throughput": 180.0},
        {"n": 4, "throughput": 320.0},
    ]
    scaling.efficiency(points)
    assert [p["efficiency"] for p in points] == [1.0, 0.9, 0.8]


def test_the_plot_is_a_png_of_every_curve_given(tmp_path: Path) -> None:
    def curve(*throughputs: float) -> list[dict[str, Any]]:
        points = [{"n": n, "throughput": t} for n, t in zip((1, 2, 4), throughputs, strict=False)]
        scaling.efficiency(points)
        return points

    result = {"curves": {"commands": curve(10, 19, 36), "queries_uncached": curve(5, 9, 13)}}
    picture = tmp_path / "scaling.png"
    scaling.plot([result], picture)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 10_000


def test_the_spread_backlog_walks_real_exits_all_over_the_map() -> None:
    world = load_world()
    types = {"PlayerCreated": PlayerCreated, "PlayerMoved": PlayerMoved, "PlayerSaid": PlayerSaid}
    homes, moves = set(), 0
    for _, new in scaling.spread_events(5000):
        event = msgspec.json.decode(new.payload, type=types[new.event_type])
        if isinstance(event, PlayerCreated):
            homes.add(event.room)
        elif isinstance(event, PlayerMoved):
            moves += 1
            exits = {str(d): to for d, to in world.rooms[event.from_room].exits.items()}
            assert exits.get(event.direction) == event.to_room
    assert len(homes) == len(world.rooms)
    assert moves > 2000


@pytest.mark.parametrize("partitions", [1, 7, 16])
@pytest.mark.parametrize("w", [1, 2, 3, 4, 8])
def test_fixed_assignment_gives_each_partition_to_exactly_one_worker_evenly(
    w: int, partitions: int
) -> None:
    shares = [scaling.share(i, w, partitions) for i in range(1, w + 1)]
    owned = [[int(p) for p in s.split(",")] if s else [] for s in shares]
    assert sorted(p for each in owned for p in each) == list(range(partitions))
    assert max(map(len, owned)) - min(map(len, owned)) <= 1


@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--assign", "round-robin"], "--assign is fixed or auto"),
        (["--backlog", "one-room"], "--backlog is spread or two-rooms"),
        (["--points", "1,x"], "curves are commands, projections, queries and points 1 to 8"),
        (["--curve", "latency"], "curves are commands, projections, queries and points 1 to 8"),
        (["--points", "1,4", "--partitions", "2"], "--partitions 2 leaves some of 4 workers"),
    ],
)
def test_aq_bench_scaling_refuses_bad_options_with_its_code(option: list[str], says: str) -> None:
    aq = str(Path(sys.executable).with_name("aq"))
    done = subprocess.run(
        [aq, "bench", "scaling", *option], capture_output=True, check=False, text=True, timeout=60
    )
    assert done.returncode == 2
    assert f"error [invalid_scaling]: {says}" in " ".join(done.stderr.split())
