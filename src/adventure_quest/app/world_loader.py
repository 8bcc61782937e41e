"""Loading world files: the one shipped in the package, or one the user names."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from adventure_quest.domain.errors import DomainError
from adventure_quest.domain.world import World, parse_world


def load_world(path: str | Path | None = None) -> World:
    """The world at ``path``, or the default world shipped with the package."""
    if path is None:
        data = resources.files("adventure_quest").joinpath("data/world.json").read_bytes()
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise DomainError(
                "world_not_found", f"cannot read the world file {path}: {error.strerror}"
            ) from error
    return parse_world(data)
