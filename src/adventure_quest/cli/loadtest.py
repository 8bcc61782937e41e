"""``aq loadtest``: simulated players against a running server over HTTP (``bench.loadtest``)."""

from __future__ import annotations

from typing import Annotated

import typer

from adventure_quest.bootstrap import runtime


def register(app: typer.Typer) -> None:
    """Attach ``loadtest`` (the generator is imported lazily: it is not needed to play)."""

    @app.command("loadtest")
    def loadtest(
        url: Annotated[str, typer.Option(help="The running server, e.g. http://127.0.0.1:8000.")],
        players: Annotated[
            int, typer.Option(min=1, max=10_000, help="Simulated players, one connection each.")
        ] = 100,
        duration: Annotated[
            float, typer.Option(min=0.1, help="Seconds of load once the characters exist.")
        ] = 30.0,
        rate: Annotated[
            float,
            typer.Option(
                min=0, help="Commands per second across all players; 0: as fast as possible."
            ),
        ] = 0.0,
        query_ratio: Annotated[
            float, typer.Option(min=0, max=1, help="The fraction of requests that are queries.")
        ] = 0.7,
        seed: Annotated[
            int | None, typer.Option(min=0, help="Names and choices; default: a random one.")
        ] = None,
        characters: Annotated[
            int,
            typer.Option(
                min=0, max=1_000_000, help="Idle characters to create first (server memory)."
            ),
        ] = 0,
        spread_idle: Annotated[
            bool,
            typer.Option(
                help="Walk each idle character a few random steps away from the start room"
                " (default: they all stand in it, a crowded room)."
            ),
        ] = False,
        hot_room: Annotated[
            bool,
            typer.Option(
                help="The players stay in the start room, dropping what they carry and taking"
                " it back as fast as they can: every command writes that room's stream."
            ),
        ] = False,
        read_back: Annotated[
            bool,
            typer.Option(
                help="Read every 10th command back with its consistency token (the lag figure);"
                " --no-read-back measures the write path alone."
            ),
        ] = True,
        as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    ) -> None:
        """Players create characters, then query and command at a realistic mix: throughput,
        latency p50/p99 and end-to-end lag (a command's answer to its read-back)."""
        from adventure_quest.bench import loadtest as generator
        from adventure_quest.bench.harness import report

        def progress(line: str) -> None:
            typer.echo(line, err=True)

        try:
            result = runtime.run(
                generator.run(
                    url,
                    players=players,
                    duration_s=duration,
                    rate=rate,
                    query_ratio=query_ratio,
                    seed=seed,
                    read_back=read_back,
                    progress=progress,
                    characters=characters,
                    spread_idle=spread_idle,
                    hot_room=hot_room,
                )
            )
        except generator.LoadTestError as error:
            typer.echo(f"error [loadtest]: {error}", err=True)
            raise typer.Exit(2) from None
        if as_json:
            report(result, as_json=True)
        else:
            typer.echo(generator.summary(result))
