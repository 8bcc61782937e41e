"""``aq items check|repair``: item instances recorded in more than one place (docs/handover.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import msgspec
import typer

from adventure_quest.app.item_audit import Audit, Duplicate, Place, audit, repair, throttled
from adventure_quest.bootstrap.parts import Parts
from adventure_quest.cli.workers import DataDir, Json, Store
from adventure_quest.config import Settings


def register(
    app: typer.Typer,
    settings_of: Callable[[Path | None, str | None], Settings],
    run: Callable[..., object],
) -> None:
    """Attach ``aq items``; ``settings_of(data_dir, store)`` refuses a store that is not there."""
    items = typer.Typer(help="Item instances recorded in more than one place: find, repair.")
    app.add_typer(items, name="items")

    @items.command("check")
    def check(data_dir: DataDir = None, store: Store = None, as_json: Json = False) -> None:
        """List every item instance found in more than one place (exit 1 when there are any).

        Reads every shard's log and every room's and character's state; writes nothing.
        """
        found = run(_check(settings_of(data_dir, store), as_json))
        if isinstance(found, Audit) and found.duplicates:
            raise typer.Exit(1)

    @items.command("repair")
    def repair_command(data_dir: DataDir = None, store: Store = None) -> None:
        """Take away every extra copy (one DuplicateRemoved event each), keeping each instance
        where its deciding events put it last. Safe to run again; best run while nobody plays."""
        run(_repair(settings_of(data_dir, store)))


def _progress(count: int) -> None:
    typer.echo(f"read {count:,} events…", err=True)


async def _check(settings: Settings, as_json: bool) -> Audit:
    async with Parts(settings) as parts:
        services = parts.write_side()
        found = await audit(services.game, throttled(_progress))
    if as_json:
        typer.echo(msgspec.json.encode(_as_dict(found)).decode())
    else:
        _print(found)
    return found


async def _repair(settings: Settings) -> None:
    async with Parts(settings) as parts:
        services = parts.write_side()
        found = await audit(services.game, throttled(_progress))
        _print(found)
        if not found.duplicates:
            return

        def removed(duplicate: Duplicate, place: Place) -> None:
            typer.echo(f"  {duplicate.item.item_id}: removed the copy {found.describe(place)}")

        count = await repair(services.game, found, removed)
        typer.echo(f"removed {count} extra {'copy' if count == 1 else 'copies'}")


def _print(found: Audit) -> None:
    typer.echo(
        f"read {found.events:,} events; {found.instances:,} item instances in {found.rooms} rooms"
        f" and {found.characters} characters' inventories:"
        f" {len(found.duplicates)} in more than one place"
    )
    for duplicate in found.duplicates:
        places = ", ".join(
            found.describe(place) + (f" x{count}" if count > 1 else "")
            for place, count in Counter(duplicate.places).items()
        )
        item = duplicate.item
        typer.echo(f"  {item.item_id} ({item.item_key}): {places}")
        typer.echo(f"    keeps the copy {found.describe(duplicate.keep)}")


def _as_dict(found: Audit) -> dict[str, object]:
    return {
        "events": found.events,
        "rooms": found.rooms,
        "characters": found.characters,
        "instances": found.instances,
        "duplicates": [
            {
                "item_id": d.item.item_id,
                "item_key": d.item.item_key,
                "places": [found.describe(place) for place in d.places],
                "keep": found.describe(d.keep),
            }
            for d in found.duplicates
        ],
    }
