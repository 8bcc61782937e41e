"""``aq bench …``: the typer front of ``adventure_quest.bench`` (see docs/benchmarks.md)."""

from __future__ import annotations

from typing import Annotated

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
