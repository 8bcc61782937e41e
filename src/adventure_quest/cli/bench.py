"""``aq bench …``: the typer front of ``adventure_quest.bench`` (see docs/benchmarks.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from adventure_quest.bootstrap import runtime

Url = Annotated[
    str | None,
    typer.Option("--store", help="Store URL; default: a fresh SQLite file in a temp dir."),
]
Json = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]


def register(bench_app: typer.Typer) -> None:
    """Attach the benchmark commands (imported lazily: they are not needed to play)."""
    from adventure_quest.bench import append, load, project, read, rebuild, units
    from adventure_quest.bench.harness import report, scratch_url

    @bench_app.command("append")
    def bench_append(
        store: Url = None,
        clients: Annotated[int, typer.Option(min=1, max=10_000)] = 64,
        events: Annotated[int, typer.Option(min=1)] = 100_000,
        as_json: Json = False,
    ) -> None:
        """N single-event appends by C concurrent clients: events/s, p50/p99 latency."""
        with scratch_url(store) as url:
            report(runtime.run(append.run(url, clients, events)), as_json)

    @bench_app.command("load")
    def bench_load(
        store: Url = None,
        history: Annotated[int, typer.Option(min=1)] = 10_000,
        repeats: Annotated[int, typer.Option(min=1)] = 5,
        as_json: Json = False,
    ) -> None:
        """Load an aggregate of H events by full replay and from a snapshot."""
        with scratch_url(store) as url:
            report(runtime.run(load.run(url, history, repeats, as_json)), as_json)

    @bench_app.command("read")
    def bench_read(
        store: Url = None,
        events: Annotated[int, typer.Option(min=1)] = 200_000,
        as_json: Json = False,
    ) -> None:
        """Read N events of the global log, decoded: events/s."""
        with scratch_url(store) as url:
            report(runtime.run(read.run(url, events, as_json)), as_json)

    @bench_app.command("project")
    def bench_project(
        store: Url = None,
        queue: Annotated[str, typer.Option(help="memory:// or nats://HOST:PORT/STREAM")] = (
            "memory://"
        ),
        read_db: Annotated[
            str | None, typer.Option("--read-db", help="Default: a fresh SQLite file.")
        ] = None,
        events: Annotated[int, typer.Option(min=1)] = 100_000,
        workers: Annotated[int, typer.Option(min=1, max=16)] = 1,
        rate: Annotated[
            float, typer.Option(help="End-to-end mode: append this many events per second.")
        ] = 0.0,
        as_json: Json = False,
    ) -> None:
        """Projection throughput (events/s per worker), or end-to-end lag with --rate."""
        with scratch_url(store) as url:
            result = runtime.run(project.run(url, queue, read_db, events, workers, rate, as_json))
            report(result, as_json)

    @bench_app.command("hot-world")
    def bench_hot_world(
        out: Annotated[Path, typer.Option(help="The world file to write.")],
        items: Annotated[
            int, typer.Option(min=1, max=100_000, help="Torches in the start room.")
        ] = 400,
    ) -> None:
        """Write the shipped world with many torches in its start room, for
        `AQ_WORLD=FILE aq serve` under `aq loadtest --hot-room`."""
        from adventure_quest.bench.loadtest import hot_world

        out.write_bytes(msgspec.json.encode(hot_world(items)))
        typer.echo(f"wrote {out}: {items} torches in the start room")

    @bench_app.command("units")
    def bench_units(
        server: Annotated[
            str, typer.Option(help="PostgreSQL server (a database is made on it for the run).")
        ] = "postgresql://postgres@127.0.0.1:5432",
        handles: Annotated[int, typer.Option(min=1, max=16, help="Worker processes.")] = 1,
        events: Annotated[int, typer.Option(min=1)] = 100_000,
        batch: Annotated[int, typer.Option(min=1, help="Events per unit.")] = 500,
        as_json: Json = False,
    ) -> None:
        """Events/s that N worker processes apply at once to one PostgreSQL read database."""
        report(runtime.run(units.run(server, handles, events, batch)), as_json)

    @bench_app.command("rebuild")
    def bench_rebuild(
        store: Url = None,
        read_db: Annotated[
            str | None, typer.Option("--read-db", help="Default: a fresh SQLite file.")
        ] = None,
        events: Annotated[int, typer.Option(min=1)] = 1_000_000,
        projection: Annotated[str, typer.Option(help="The read model to rebuild.")] = "room_view",
        as_json: Json = False,
    ) -> None:
        """Rebuild one read model from a log of N events: seconds and events/s."""
        with scratch_url(store) as url:
            report(runtime.run(rebuild.run(url, read_db, events, projection, as_json)), as_json)

    _register_scaling(bench_app)


def _register_scaling(bench_app: typer.Typer) -> None:
    @bench_app.command("scaling")
    def bench_scaling(
        curve: Annotated[
            list[str] | None,
            typer.Option(help="commands, projections or queries (repeat; default: all three)."),
        ] = None,
        points: Annotated[
            str, typer.Option(help="Hosts per point: commands and projections (queries: 1,2,3).")
        ] = "1,2,4",
        quota: Annotated[
            float, typer.Option(min=0.02, max=1, help="CPU cores of each scaled host.")
        ] = 0.15,
        replica_quota: Annotated[
            float, typer.Option(min=0.01, max=1, help="CPU cores of each read replica host.")
        ] = 0.03,
        load_cpu: Annotated[
            float, typer.Option(min=0.05, max=2, help="CPU cores of the load host.")
        ] = 0.4,
        players: Annotated[int, typer.Option(min=1, help="Players per API host.")] = 24,
        seconds: Annotated[float, typer.Option(min=1, help="Load per point.")] = 20.0,
        events: Annotated[int, typer.Option(min=1000, help="Projection backlog.")] = 60_000,
        backlog: Annotated[
            str, typer.Option(help="spread (over the map) or two-rooms (aq bench project's).")
        ] = "spread",
        assign: Annotated[
            str,
            typer.Option(
                help="Projection workers' partitions: fixed (an even share each) or auto"
                " (leases, rebalancing as the workers come up)."
            ),
        ] = "fixed",
        partitions: Annotated[
            int,
            typer.Option(
                min=1, max=1024, help="Queue partitions of the projection curve's cluster."
            ),
        ] = 16,
        out: Annotated[
            Path | None, typer.Option(help="Also write the figures (JSON) to this file.")
        ] = None,
        as_json: Json = False,
    ) -> None:
        """Throughput against hosts on a simulated cluster (root; see docs/scaling.md)."""
        from adventure_quest.bench import scaling
        from adventure_quest.cluster.hosts import ClusterError, check_prerequisites

        chosen = curve or list(scaling.CURVES)
        wrong = [c for c in chosen if c not in scaling.CURVES]
        try:
            hosts = [int(p) for p in points.split(",")]
        except ValueError:
            hosts = []
        if backlog not in scaling.BACKLOGS:
            typer.echo("error [invalid_scaling]: --backlog is spread or two-rooms", err=True)
            raise typer.Exit(2)
        if assign not in scaling.ASSIGNMENTS:
            typer.echo("error [invalid_scaling]: --assign is fixed or auto", err=True)
            raise typer.Exit(2)
        if hosts and "projections" in chosen and partitions < max(hosts):
            typer.echo(
                f"error [invalid_scaling]: --partitions {partitions} leaves some of"
                f" {max(hosts)} workers none",
                err=True,
            )
            raise typer.Exit(2)
        if wrong or not hosts or min(hosts) < 1 or max(hosts) > 8:
            typer.echo(
                f"error [invalid_scaling]: curves are {', '.join(scaling.CURVES)} and points"
                " 1 to 8 hosts, comma-separated (e.g. 1,2,4)",
                err=True,
            )
            raise typer.Exit(2)
        try:
            check_prerequisites()
            result = scaling.run(
                chosen,
                points={"commands": hosts, "projections": hosts, "queries": [1, 2, 3]},
                quota=quota,
                replica_quota=replica_quota,
                load_cpu=load_cpu,
                players=players,
                seconds=seconds,
                events=events,
                progress=lambda line: typer.echo(line, err=True),
                backlog=backlog,
                assign=assign,
                partitions=partitions,
            )
        except ClusterError as error:
            typer.echo(f"error [{error.code}]: {error}", err=True)
            raise typer.Exit(2) from None
        if out is not None:
            out.write_text(json.dumps(result, indent=1))
        from adventure_quest.bench.harness import report

        report(result, as_json)

    @bench_app.command("scaling-plot")
    def bench_scaling_plot(
        results: Annotated[list[Path], typer.Argument(help="JSON files of `aq bench scaling`.")],
        png: Annotated[Path, typer.Option("--png", help="The picture to write.")] = Path(
            "docs/scaling.png"
        ),
    ) -> None:
        """Plot the scaling curves of one or more runs (needs the [bench] extra: matplotlib)."""
        from adventure_quest.bench import scaling

        scaling.plot([json.loads(path.read_text()) for path in results], png)
        typer.echo(f"wrote {png}")
