"""One typed settings object: defaults, a TOML config file, ``AQ_*`` variables, then flags."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path

import msgspec


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""

    code = "invalid_setting"


class DataDirError(SettingsError):
    """The data directory cannot hold the embedded files (a file, or not writable)."""

    code = "invalid_data_dir"


def check_data_dir(path: Path) -> None:
    """Refuse a data directory that cannot be made or written, before anything opens in it.

    Creates nothing: a command that only reads must not leave an empty directory behind.
    """
    if path.exists() and not path.is_dir():
        raise DataDirError(f"the data directory {path} is a file; give --data-dir a directory")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DataDirError(f"cannot make the data directory {path}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        why = "it is on a read-only file system" if read_only else "permission denied"
        raise DataDirError(f"cannot write in the data directory {path}: {why}")


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
    #: Read replicas of a PostgreSQL read database: queries go there, writes to ``read_db_url``.
    read_replicas: tuple[str, ...] = ()
    #: Query cache: ``memory://`` (in process) or ``redis://HOST:PORT[/DB]`` (shared).
    cache_url: str = "memory://"
    #: Safety-net lifetime of a cached answer (invalidation on change is what keeps it fresh).
    cache_ttl_s: float = 30.0
    #: Prefix of the cache's Redis keys: each deployment sharing a Redis server needs its own.
    cache_prefix: str = "aq:cache:"
    #: The admin token (admin endpoints); ``aq serve`` makes one in the data directory if unset.
    admin_token: str = ""
    #: Request bodies over this many bytes are refused with 413.
    max_body_bytes: int = 16_384
    #: The longest a query with a consistency token waits for the read models (ms).
    max_wait_ms: int = 5_000
    #: Where ``aq serve`` listens.
    host: str = "127.0.0.1"
    port: int = 8000
    #: Traces: ``off``, ``console`` (printed) or ``otlp`` (OpenTelemetry's ``otel`` extra).
    tracing: str = "off"
    #: The traces' service name; empty means one per role (``aq-api``, ``aq-worker``, …).
    service_name: str = ""

    @property
    def event_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.data_dir / 'events.sqlite'}"

    @property
    def read_database_url(self) -> str:
        return self.read_db_url or f"sqlite:///{self.data_dir / 'read.sqlite'}"

    @property
    def uses_data_dir(self) -> bool:
        """Whether the embedded files (event store, read models) live in ``data_dir``."""
        return not self.store_url or not self.read_db_url

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
        if not 0 < self.cache_ttl_s <= 86_400:
            raise SettingsError(f"cache_ttl_s must be in (0, 86400], got {self.cache_ttl_s}")
        if not 256 <= self.max_body_bytes <= 64 * 1024 * 1024:
            raise SettingsError(f"max_body_bytes must be 256..64 MiB, got {self.max_body_bytes}")
        if not 0 <= self.max_wait_ms <= 60_000:
            raise SettingsError(f"max_wait_ms must be 0..60000, got {self.max_wait_ms}")
        if not 0 <= self.port <= 65_535:
            raise SettingsError(f"port must be 0..65535, got {self.port}")
        if self.tracing not in TRACING:
            raise SettingsError(f"tracing must be {', '.join(TRACING)}, got {self.tracing!r}")
        return self


#: The values of ``Settings.tracing``.
TRACING = ("off", "console", "otlp")


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
    "AQ_READ_REPLICAS": "read_replicas",
    "AQ_CACHE": "cache_url",
    "AQ_CACHE_TTL": "cache_ttl_s",
    "AQ_CACHE_PREFIX": "cache_prefix",
    "AQ_ADMIN_TOKEN": "admin_token",
    "AQ_MAX_BODY_BYTES": "max_body_bytes",
    "AQ_MAX_WAIT_MS": "max_wait_ms",
    "AQ_HOST": "host",
    "AQ_PORT": "port",
    "AQ_TRACING": "tracing",
    # OpenTelemetry's own variable; the exporter reads the others (OTEL_EXPORTER_OTLP_*) itself.
    "OTEL_SERVICE_NAME": "service_name",
}
#: Settings given as a comma-separated list in the environment.
_LISTS = {"read_replicas"}


def _to_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str | Path):
        return Path(value)
    raise NotImplementedError(f"no conversion to {kind}")


def read_config_file(path: Path) -> dict[str, object]:
    """The settings of a TOML file (top-level keys named as the settings)."""
    try:
        with path.open("rb") as file:
            values = tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from error
    unknown = sorted(set(values) - set(Settings.__struct_fields__))
    if unknown:
        raise SettingsError(f"config file {path}: unknown settings {', '.join(unknown)}")
    return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    **overrides: object | None,
) -> Settings:
    """Defaults, then the config file (``config_file`` or ``AQ_CONFIG``), ``AQ_*``, then flags.

    ``None`` flags are ignored.
    """
    env = os.environ if environ is None else environ
    path = config_file or (Path(env["AQ_CONFIG"]) if env.get("AQ_CONFIG") else None)
    values: dict[str, object] = read_config_file(path) if path else {}
    for var, field in _ENV.items():
        if env.get(var):
            raw = env[var]
            listed = [part.strip() for part in raw.split(",") if part.strip()]
            values[field] = listed if field in _LISTS else raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(values, Settings, strict=False, dec_hook=_to_path)
    except msgspec.ValidationError as error:
        raise SettingsError(f"invalid setting: {error}") from error
    return settings.check()
