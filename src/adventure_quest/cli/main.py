"""The ``aq`` command: play the game, inspect streams, run benchmarks."""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Coroutine
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer

from adventure_quest.app.aggregates import player_id_for
from adventure_quest.app.repository import Loaded
from adventure_quest.app.world_loader import load_world
from adventure_quest.bootstrap import logs, runtime
from adventure_quest.bootstrap.parts import Parts, check_settings
from adventure_quest.cli.play import QUIT, Playable, enter
from adventure_quest.cli.remote import DEFAULT_TOKENS, RemoteGame, ServerError, TokenFile
from adventure_quest.config import Settings, SettingsError, check_data_dir, load_settings
from adventure_quest.domain.errors import DomainError
from adventure_quest.processing.projection_worker import PartitionsError
from adventure_quest.store.envelope import stream_key_of
from adventure_quest.store.errors import StoreError
from adventure_quest.store.migrate import SCHEMA_VERSION_OF, upgrade_store
from adventure_quest.store.postgres.connect import where
from adventure_quest.store.urls import split_urls, sqlite_path

T = TypeVar("T")

app = typer.Typer(
    help="Adventure Quest: an event-sourced multiplayer text adventure.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help text read as Markdown, not Rich markup: Rich took "[env AQ_DATA_DIR]" for a style
    # tag and dropped it from every option's help.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Event store schema: create and migrate (idempotent).")
app.add_typer(db_app, name="db")
bench_app = typer.Typer(help="Reproducible performance measurements (see docs/benchmarks.md).")
app.add_typer(bench_app, name="bench")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Embedded data directory [env AQ_DATA_DIR].")
]
StoreUrl = Annotated[str | None, typer.Option("--store", help="Event store URL [env AQ_STORE].")]


#: The global options of this invocation (the callback's flags), for ``settings_with``.
_given: dict[str, object | None] = {}


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"aq {version('adventure-quest')}")
        raise typer.Exit()


@app.callback()
def options(
    ctx: typer.Context,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="debug, info, warning, error or critical (default: info) [env AQ_LOG_LEVEL]."
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(help="text, or json: one JSON object a line [env AQ_LOG_FORMAT]."),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every HTTP request aq serve answers (default: off) [env AQ_ACCESS_LOG].",
            show_default=False,
        ),
    ] = None,
    _: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """The options of every command: how it logs, and the version."""
    given = {"log_level": log_level, "log_format": log_format, "access_log": access_log}
    try:
        load_settings({}, None, **given)  # a bad flag is refused whatever the command
    except SettingsError as error:
        raise fail(str(error), error.code) from None
    _given.update(given)
    ctx.call_on_close(_given.clear)
    ctx.call_on_close(logs.reset)


def fail(message: str, code: str) -> typer.Exit:
    """Print a clear error (with its stable code) on stderr; the caller raises the Exit."""
    typer.echo(f"error [{code}]: {message}", err=True)
    return typer.Exit(2)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine, turning configuration and store errors into clear messages."""
    try:
        return runtime.run(coroutine)
    except (SettingsError, StoreError, DomainError, ServerError, PartitionsError) as error:
        raise fail(str(error), error.code) from None


def settings_from(data_dir: Path | None, store: str | None) -> Settings:
    return settings_with(data_dir=data_dir, store_url=store)


def settings_with(config_file: Path | None = None, **flags: object | None) -> Settings:
    """Settings from a config file, AQ_* variables and flags; a bad value is a clear error (a
    URL no part could open, or a data directory that cannot hold the embedded files, included).

    Logging is configured from them (bootstrap/logs.py): every command that runs a part reads
    its settings first, and so every source of settings, a config file too, sets the logs.
    """
    try:
        settings = load_settings(None, config_file, **{**_given, **flags})
        check_settings(settings)
        if settings.uses_data_dir:
            check_data_dir(settings.data_dir)
    except (SettingsError, StoreError) as error:
        raise fail(str(error), error.code) from None
    logs.configure(settings)
    return settings


@app.command()
def play(
    data_dir: DataDir = None,
    store: StoreUrl = None,
    name: Annotated[str | None, typer.Option(help="Character to create or resume.")] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Play against a server (aq serve) at this URL instead of locally."),
    ] = None,
    tokens: Annotated[Path | None, typer.Option(help="Where --url keeps character tokens.")] = None,
) -> None:
    """Play in the terminal: create or resume a character, then type commands ('help')."""
    settings = settings_from(data_dir, store)
    if url is None:
        run(_play_here(settings, name))
        return
    if not url.startswith(("http://", "https://")):
        raise fail(f"--url must start with http:// or https://, got {url!r}", "invalid_url")
    run(_play_remote(settings, url, tokens or DEFAULT_TOKENS, name))


async def _play_here(settings: Settings, name: str | None) -> None:
    async with Parts(settings) as parts:
        services = parts.write_side()
        await _play(services.game, name)


async def _play_remote(settings: Settings, url: str, tokens: Path, name: str | None) -> None:
    game = RemoteGame(url, load_world(settings.world_path), TokenFile(tokens))
    try:
        await _play(game, name)
    finally:
        await game.close()


async def _play(game: Playable, name: str | None) -> None:
    interactive = sys.stdin.isatty()
    if isinstance(sys.stdin, io.TextIOWrapper):
        # Undecodable bytes become U+FFFD instead of ending the game with an exception.
        sys.stdin.reconfigure(errors="replace")
    while True:
        if name is None:
            typer.echo("What is your name, adventurer?")
            name = _read_line("name> " if interactive else "")
            if name is None:
                return
        try:
            session, greeting = await enter(game, name)
        except DomainError as error:
            typer.echo(error.message)
            name = None
            continue
        break
    typer.echo(greeting)
    while (line := _read_line("> " if interactive else "")) is not None:
        answer = await session.handle(line)
        if answer is QUIT:
            break
        if answer:
            typer.echo(str(answer))
    typer.echo("Farewell.")


def _read_line(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


@app.command()
def events(
    stream: Annotated[str, typer.Argument(help="Stream id, e.g. room-village_square.")],
    data_dir: DataDir = None,
    store: StoreUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print a stream's history, payloads upcast to the current schema."""
    run(_events(existing_store(settings_from(data_dir, store)), resolve_stream(stream), as_json))


def existing_store(settings: Settings) -> Settings:
    """Refuse to inspect a SQLite store that does not exist (instead of creating an empty one)."""
    try:
        paths = [Path(sqlite_path(u)) for u in split_urls(settings.event_store_url)
                 if u.startswith("sqlite:")]  # fmt: skip
    except StoreError as error:
        raise fail(str(error), error.code) from None
    for path in paths:
        if not path.exists():
            raise fail(f"there is no store at {path}; check --data-dir", "store_not_found")
    return settings


def resolve_stream(stream: str) -> str:
    """Accept ``player:NAME`` as a convenience for a character's stream id."""
    if stream.startswith("player:"):
        return f"player-{player_id_for(stream.removeprefix('player:'))}"
    return stream


async def _events(settings: Settings, stream: str, as_json: bool) -> None:
    async with Parts(settings) as parts:
        services = parts.write_side()
        recorded = await services.history.events(stream)
        if not recorded:
            raise fail(f"stream {stream!r} has no events", "stream_not_found")
        for event in recorded:
            payload = services.codec.to_builtins(event)
            if as_json:
                line = {
                    "version": event.version, "position": event.position,
                    "event_id": event.event_id, "event_type": event.event_type,
                    "schema_version": event.schema_version, "payload": payload,
                    "metadata": {
                        f: getattr(event.metadata, f) for f in event.metadata.__struct_fields__
                    },
                }  # fmt: skip
                typer.echo(msgspec.json.encode(line).decode())
            else:
                body = msgspec.json.encode(payload).decode()
                typer.echo(f"v{event.version:<5} @{event.position:<8} {event.event_type}  {body}")


@app.command()
def state(
    stream: Annotated[str, typer.Argument(help="Stream id (player-…, room-…) or player:NAME.")],
    version: Annotated[int | None, typer.Option(help="Show it as it was at this version.")] = None,
    data_dir: DataDir = None,
    store: StoreUrl = None,
) -> None:
    """Show an aggregate's state, now or as it was at a version (time travel)."""
    run(_state(existing_store(settings_from(data_dir, store)), resolve_stream(stream), version))


async def _state(settings: Settings, stream: str, version: int | None) -> None:
    async with Parts(settings) as parts:
        services = parts.write_side()
        game, stream_type = services.game, stream.partition("-")[0]
        if stream_type not in ("player", "room"):
            raise fail(f"{stream!r} is not a player-… or room-… stream", "unknown_stream_type")
        if stream_type == "room" and stream_key_of(stream) not in services.world.rooms:
            raise fail(f"there is no room {stream_key_of(stream)!r}", "room_not_found")
        history = services.history
        current = await history.version(stream)
        if version is not None and not 0 <= version <= current:
            raise fail(f"{stream} has versions 0..{current}; got {version}", "version_out_of_range")
        if current == 0 and stream_type == "player":
            raise fail(f"stream {stream!r} has no events", "stream_not_found")
        loaded: Loaded[Any] = await (
            history.as_of(game.players, stream, version=version)
            if stream_type == "player"
            else history.as_of(game.rooms, stream, version=version)
        )
        body = {"stream": stream, "version": loaded.version, "state": loaded.state}
        typer.echo(msgspec.json.format(msgspec.json.encode(body)).decode())


@db_app.command("upgrade")
def db_upgrade(
    data_dir: DataDir = None,
    store: StoreUrl = None,
    read_db: Annotated[
        str | None, typer.Option("--read-db", help="Read database URL [env AQ_READ_DB].")
    ] = None,
) -> None:
    """Create or migrate every shard of the store, and the read models' tables (safe to rerun)."""
    settings = settings_with(data_dir=data_dir, store_url=store, read_db_url=read_db)
    for url in split_urls(settings.event_store_url):
        applied = run(upgrade_store(url))
        shown = where(url) if url.startswith("postgres") else url
        done = f"applied migrations {applied}" if applied else "already up to date"
        typer.echo(f"{shown}: {done} (schema version {SCHEMA_VERSION_OF[url.split(':', 1)[0]]})")
    url = settings.read_database_url
    shown = where(url) if url.startswith("postgres") else url
    typer.echo(f"{shown}: read-model tables ready ({run(_create_read_tables(settings))} tables)")


async def _create_read_tables(settings: Settings) -> int:
    """The tables the projections write (what a worker creates when it starts), created now."""
    async with Parts(settings) as parts:
        runner = await parts.runner(create_tables=True)
        return len(runner.tables)


@functools.cache
def every_command() -> typer.Typer:
    """The app with the commands of the other modules attached (once, however often asked)."""
    from adventure_quest.cli import bench, cluster, items, loadtest, serve, workers

    bench.register(bench_app)
    cluster.register(app)
    items.register(app, lambda data_dir, store: existing_store(settings_from(data_dir, store)), run)
    loadtest.register(app)
    loadtest.register(bench_app)  # also `aq bench loadtest`, beside the other benchmarks
    workers.register(app, settings_with, run)
    serve.register(app, settings_with, run)
    return app


def main() -> None:
    """Console-script entry point."""
    every_command()()
