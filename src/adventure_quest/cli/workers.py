"""``aq process|relay|worker|status|dlq``: the processing path from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from adventure_quest.bootstrap.metrics_server import serving_metrics
from adventure_quest.bootstrap.parts import READ_TABLES, RELAYS, Parts
from adventure_quest.bootstrap.roles import Job, processing_jobs, run_together
from adventure_quest.bootstrap.runtime import quieter_garbage_collection
from adventure_quest.bootstrap.tracing import traced
from adventure_quest.config import Settings
from adventure_quest.processing.groups import GROUP
from adventure_quest.processing.status import as_json, prometheus, read_status, relayed_logs
from adventure_quest.projections.rebuild import rebuild

Partitions = Annotated[
    str,
    typer.Option(
        "--partitions",
        help="Partitions to consume: 0-7, 1,3,5, all, or auto (shared among workers via NATS).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Embedded data directory [env AQ_DATA_DIR].")
]
Store = Annotated[str | None, typer.Option("--store", help="Event store URL [env AQ_STORE].")]
Queue = Annotated[
    str | None, typer.Option("--queue", help="memory:// or nats://HOST:PORT [env AQ_QUEUE].")
]
ReadDb = Annotated[
    str | None, typer.Option("--read-db", help="Read database URL [env AQ_READ_DB].")
]
SettingsOf = Callable[..., Settings]


def stopped_by_signals() -> asyncio.Event:
    """An event SIGINT or SIGTERM sets."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    return stop


async def report(parts: Parts, stop: asyncio.Event, every_s: float = 5.0) -> None:
    """A progress line on stderr every few seconds while running."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every_s):
                await stop.wait()
        line = []
        if RELAYS in parts.opened:
            line.append(f"published {sum(relay.published for relay in parts.relays())}")
        if READ_TABLES in parts.opened:
            runner = await parts.runner(create_tables=True)
            totals = runner.totals
            line.append(
                f"applied {totals.applied}, duplicates {totals.duplicates}, parked {totals.parked},"
                f" fenced units {runner.fenced}"
            )
        print(", ".join(line), file=sys.stderr, flush=True)


def register(app: typer.Typer, settings_of: SettingsOf, run: Callable[..., object]) -> None:
    """Attach the commands; ``settings_of`` builds settings from flags, ``run`` runs cleanly."""

    @app.command("process")
    def process(
        partitions: Partitions = "all",
        data_dir: DataDir = None,
        store: Store = None,
        queue: Queue = None,
        read_db: ReadDb = None,
    ) -> None:
        """Run the relays and projection workers of every shard in this process."""
        settings = settings_of(
            data_dir=data_dir, store_url=store, queue_url=queue, read_db_url=read_db
        )
        run(_process(settings, partitions, relays=True, workers=True))

    @app.command("relay")
    def relay(data_dir: DataDir = None, store: Store = None, queue: Queue = None) -> None:
        """Run one relay per shard: the event store's logs to the queue (needs nats://)."""
        settings = settings_of(data_dir=data_dir, store_url=store, queue_url=queue)
        _needs_shared_queue(settings)
        run(_process(settings, "all", relays=True, workers=False))

    @app.command("worker")
    def worker(
        partitions: Partitions = "all",
        data_dir: DataDir = None,
        store: Store = None,
        queue: Queue = None,
        read_db: ReadDb = None,
    ) -> None:
        """Run projection workers for some partitions (needs a shared queue: nats://)."""
        settings = settings_of(
            data_dir=data_dir, store_url=store, queue_url=queue, read_db_url=read_db
        )
        _needs_shared_queue(settings)
        run(_process(settings, partitions, relays=False, workers=True))

    @app.command("status")
    def status(
        data_dir: DataDir = None,
        store: Store = None,
        queue: Queue = None,
        read_db: ReadDb = None,
        as_json_flag: Json = False,
        as_prometheus: Annotated[bool, typer.Option("--prometheus")] = False,
    ) -> None:
        """Relay and projection lag (events, seconds, ok/lagging/stalled) and dead letters."""
        settings = settings_of(
            data_dir=data_dir, store_url=store, queue_url=queue, read_db_url=read_db
        )
        run(_status(settings, as_json_flag, as_prometheus))

    projections_app = typer.Typer(help="Read models: rebuild one from the log.")
    app.add_typer(projections_app, name="projections")

    @projections_app.command("rebuild")
    def projections_rebuild(
        name: Annotated[str, typer.Argument(help="Projection, e.g. room_view.")],
        data_dir: DataDir = None,
        store: Store = None,
        read_db: ReadDb = None,
    ) -> None:
        """Replay the log into shadow tables, catch up, swap in atomically (no downtime)."""
        settings = settings_of(data_dir=data_dir, store_url=store, read_db_url=read_db)
        run(_rebuild(settings, name))

    dlq = typer.Typer(help="Events a projection failed on, parked in order per stream.")
    app.add_typer(dlq, name="dlq")

    @dlq.command("list")
    def dlq_list(
        projection: str | None = None,
        data_dir: DataDir = None,
        store: Store = None,
        read_db: ReadDb = None,
        as_json_flag: Json = False,
    ) -> None:
        """List parked events."""
        settings = settings_of(data_dir=data_dir, store_url=store, read_db_url=read_db)
        run(_dlq(settings, "list", projection, None, as_json_flag))

    @dlq.command("retry")
    def dlq_retry(
        projection: Annotated[str, typer.Option(help="Projection to retry.")],
        stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
        data_dir: DataDir = None,
        store: Store = None,
        read_db: ReadDb = None,
    ) -> None:
        """Apply parked events again, in order (a new failure parks them again)."""
        settings = settings_of(data_dir=data_dir, store_url=store, read_db_url=read_db)
        run(_dlq(settings, "retry", projection, stream, False))

    @dlq.command("skip")
    def dlq_skip(
        projection: Annotated[str, typer.Option(help="Projection to skip for.")],
        stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
        data_dir: DataDir = None,
        store: Store = None,
        read_db: ReadDb = None,
    ) -> None:
        """Drop parked events: the read model goes on without them."""
        settings = settings_of(data_dir=data_dir, store_url=store, read_db_url=read_db)
        run(_dlq(settings, "skip", projection, stream, False))


def _needs_shared_queue(settings: Settings) -> None:
    if settings.queue_url.startswith("memory:"):
        typer.echo(
            "error [queue_not_shared]: the in-process queue (memory://) lives inside one process;"
            " run `aq process`, or give --queue nats://HOST:PORT (AQ_QUEUE) to split the parts",
            err=True,
        )
        raise typer.Exit(2)


async def _process(settings: Settings, spec: str, *, relays: bool, workers: bool) -> None:
    automatic = spec == "auto"
    if automatic and workers and settings.queue_url.startswith("memory:"):
        typer.echo(
            "error [queue_not_shared]: --partitions auto shares partitions between processes"
            " through NATS; give --queue nats://HOST:PORT (AQ_QUEUE)",
            err=True,
        )
        raise typer.Exit(2)
    role = "process" if relays and workers else "relay" if relays else "worker"
    with traced(settings, role):
        async with Parts(settings) as parts:
            stop = stopped_by_signals()
            jobs = await processing_jobs(parts, spec, relays=relays, workers=workers, stop=stop)
            if stop.is_set():  # stopped while waiting for the read database
                return
            quieter_garbage_collection()
            print(f"processing: {jobs.described}; Ctrl-C stops", file=sys.stderr, flush=True)
            progress: list[Job] = [lambda stop: report(parts, stop)]
            runner = await parts.runner(create_tables=True) if workers else None
            relayed = parts.relays() if relays else []
            with serving_metrics(settings.host, settings.metrics_port, relayed, runner):
                await run_together([*jobs.first, *progress], stop, last=jobs.last)


class RateColumn(ProgressColumn):
    """Events per second."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f}/s")


async def _rebuild(settings: Settings, name: str) -> None:
    async with Parts(settings) as parts:
        runner = await parts.runner(create_tables=True)
        try:
            runner.projection(name)
        except ValueError as error:
            typer.echo(f"error [unknown_projection]: {error}", err=True)
            raise typer.Exit(2) from None
        columns = (
            TextColumn("rebuilding {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            RateColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=Console(stderr=True)) as bar:
            task = bar.add_task(name, total=None)
            quieter_garbage_collection()

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = await rebuild(runner, name, advance)
    typer.echo(
        f"rebuilt {result.projection}: {result.events} events replayed, {result.rows} rows"
        f" swapped in, {result.caught_up_after_swap} applied after the swap"
    )


async def _status(settings: Settings, json_out: bool, prom: bool) -> None:
    async with Parts(settings) as parts:
        letters = await parts.dead_letters()
        relayed = relayed_logs(parts.event_store().logs(), parts.checkpoints())
        status = await read_status(relayed, parts.queue(), letters.count, group=GROUP)
    if prom:
        typer.echo(prometheus(status), nl=False)
    elif json_out:
        typer.echo(as_json(status))
    else:
        for r in status["relays"]:
            typer.echo(
                f"relay shard {r['shard']}: {r['state']}, {r['lag_events']} events /"
                f" {r['lag_seconds']} s behind (published {r['position']} of {r['head']})"
            )
        projected = status["projections"]
        typer.echo(
            f"projections: {projected['state']}, {projected['lag_events']} events /"
            f" {projected['lag_seconds']} s behind"
        )
        typer.echo(f"dead letters: {status['dead_letters']}")


async def _dlq(
    settings: Settings, action: str, projection: str | None, stream: str | None, json_out: bool
) -> None:
    async with Parts(settings) as parts:
        admin = await parts.dead_letters()
        if action == "list":
            letters = await admin.dead_letters(projection)
            for letter in letters:
                typer.echo(
                    as_json(letter)
                    if json_out
                    else f"{letter['projection']} {letter['stream_id']} v{letter['version']}"
                    f" {letter['event_type']}: {letter['error']}"
                )
            if not json_out:
                typer.echo(f"{len(letters)} parked event(s)")
        elif action == "retry" and projection is not None:
            applied, parked = await admin.retry(projection, stream)
            typer.echo(f"applied {applied}, still parked {parked}")
        elif projection is not None:
            typer.echo(f"skipped {await admin.skip(projection, stream)}")
