"""``aq serve``: the game server over HTTP (everything in one process by default)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from adventure_quest.bootstrap import tracing
from adventure_quest.bootstrap.roles import ROLES
from adventure_quest.bootstrap.serve import admin_token, serve
from adventure_quest.cli.workers import DataDir, Partitions, Queue, ReadDb, SettingsOf, Store
from adventure_quest.config import SettingsError, check_data_dir
from adventure_quest.processing.projection_worker import PartitionsError, parse_partitions


def register(app: typer.Typer, settings_of: SettingsOf, run: Callable[..., object]) -> None:
    @app.command("serve")
    def serve_command(
        host: Annotated[str | None, typer.Option(help="Address to listen on [env AQ_HOST].")] = (
            None
        ),
        port: Annotated[int | None, typer.Option(help="Port to listen on [env AQ_PORT].")] = None,
        data_dir: DataDir = None,
        role: Annotated[
            str, typer.Option(help="all (one process), or one part: api, relay or worker.")
        ] = "all",
        partitions: Partitions = "all",
        store: Store = None,
        queue: Queue = None,
        read_db: ReadDb = None,
        cache: Annotated[
            str | None, typer.Option(help="memory://, none:// or redis://HOST:PORT [env AQ_CACHE].")
        ] = None,
        config: Annotated[
            Path | None, typer.Option(help="A TOML config file [env AQ_CONFIG].")
        ] = None,
    ) -> None:
        """Serve the game over HTTP: API, relays, workers and process managers."""
        if role not in ROLES:
            typer.echo(f"error [invalid_role]: --role must be one of {', '.join(ROLES)}", err=True)
            raise typer.Exit(2)
        settings = settings_of(
            config,
            host=host,
            port=port,
            data_dir=data_dir,
            store_url=store,
            queue_url=queue,
            read_db_url=read_db,
            cache_url=cache,
        )
        if role != "all" and settings.queue_url.startswith("memory:"):
            typer.echo(
                "error [queue_not_shared]: --role splits the server into processes that share"
                " the queue; give --queue nats://HOST:PORT (AQ_QUEUE), or use --role all",
                err=True,
            )
            raise typer.Exit(2)
        try:  # refuse what would fail once running, before the admin token is written
            if partitions != "auto":
                parse_partitions(partitions, settings.partitions)
            tracing.check(settings)
            if role in ("all", "api") and not settings.admin_token:
                check_data_dir(settings.data_dir)  # the admin token is kept there
        except (SettingsError, PartitionsError) as error:
            typer.echo(f"error [{error.code}]: {error}", err=True)
            raise typer.Exit(2) from None
        if role in ("all", "api"):
            configured = bool(settings.admin_token)
            settings = admin_token(settings)
            where = "configured" if configured else f"in {settings.data_dir / 'admin-token'}"
            typer.echo(f"admin token: {where}", err=True)
        run(serve(settings, role, partitions))
