"""One typed settings object, read from the environment (``AQ_*``) and overridden by flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""

    code = "invalid_setting"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything configurable; see docs/configuration.md for each setting."""

    #: Where the embedded store lives when ``store_url`` is not given.
    data_dir: Path = Path("aq-data")
    #: Event store URL; empty means ``sqlite:///<data_dir>/events.sqlite``.
    store_url: str = ""
    #: Write a snapshot every N events of a stream (0 disables snapshots).
    snapshot_every: int = 50
    #: Aggregates kept loaded in memory (LRU).
    aggregate_cache_size: int = 10_000
    #: Stream versions the SQLite writer keeps in memory (LRU).
    stream_cache_size: int = 100_000
    #: Attempts a command makes against concurrent writers before answering "conflict".
    max_attempts: int = 5
    #: A world file to play instead of the shipped one.
    world_path: Path | None = None
    #: Message queue URL: ``memory://`` (in-process) or ``nats://HOST:PORT``.
    queue_url: str = "memory://"
    #: Read database URL; empty means ``sqlite:///<data_dir>/read.sqlite``.
    read_db_url: str = ""
    #: Partitions of the queue (events of one stream always share one).
    partitions: int = 16
    #: Seconds between world-clock ticks (each tick restocks the rooms).
    tick_seconds: float = 60.0

    @property
    def event_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'events.sqlite'}"

    @property
    def read_database_url(self) -> str:
        return self.read_db_url or f"sqlite:///{self.data_dir / 'read.sqlite'}"

    def check(self) -> Settings:
        """Refuse values that cannot work, naming the setting."""
        for name in ("snapshot_every", "aggregate_cache_size", "stream_cache_size"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.tick_seconds < 0.01:
            raise SettingsError(f"tick_seconds must be >= 0.01, got {self.tick_seconds}")
        if not 1 <= self.partitions <= 1024:
            raise SettingsError(f"partitions must be 1..1024, got {self.partitions}")
        if self.max_attempts < 1:
            raise SettingsError(f"max_attempts must be >= 1, got {self.max_attempts}")
        return self


_ENV = {
    "AQ_DATA_DIR": "data_dir",
    "AQ_STORE": "store_url",
    "AQ_SNAPSHOT_EVERY": "snapshot_every",
    "AQ_AGGREGATE_CACHE_SIZE": "aggregate_cache_size",
    "AQ_STREAM_CACHE_SIZE": "stream_cache_size",
    "AQ_MAX_ATTEMPTS": "max_attempts",
    "AQ_WORLD": "world_path",
    "AQ_QUEUE": "queue_url",
    "AQ_READ_DB": "read_db_url",
    "AQ_PARTITIONS": "partitions",
    "AQ_TICK_SECONDS": "tick_seconds",
}


def _to_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise NotImplementedError(f"no conversion to {kind}")


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object | None) -> Settings:
    """Settings from ``AQ_*`` variables, then flags (``None`` flags are ignored)."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {field: env[var] for var, field in _ENV.items() if env.get(var)}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(values, Settings, strict=False, dec_hook=_to_path)
    except msgspec.ValidationError as error:
        raise SettingsError(f"invalid setting: {error}") from error
    return settings.check()
