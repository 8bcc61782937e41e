"""One typed settings object: defaults, a TOML config file, ``AQ_*`` variables, then flags."""

from __future__ import annotations

import math
import os
import re
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


class InvalidLogLevelError(SettingsError):
    """``log_level`` is not one of ``LOG_LEVELS``."""

    code = "invalid_log_level"


class InvalidLogFormatError(SettingsError):
    """``log_format`` is not one of ``LOG_FORMATS``."""

    code = "invalid_log_format"


#: The levels ``log_level`` takes (any case), those of the standard ``logging`` module.
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: ``text``: one line a record for people; ``json``: one JSON object a line for collectors.
LOG_FORMATS = ("text", "json")


class Rate(msgspec.Struct, frozen=True):
    """A token bucket: ``count`` tokens per ``unit`` (``s``, ``m`` or ``h``) refill it, and it
    holds ``burst`` at most (a client idle long enough may send that many at once)."""

    count: float
    unit: str
    burst: int

    @property
    def per_s(self) -> float:
        return self.count / _UNIT_SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.count:g}/{self.unit}:{self.burst}"


_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
#: The commands a rate limit can name: ``create`` counts per client address, the others per
#: character (api/limits.py).
RATE_LIMITED = ("create", "move", "take", "drop", "use", "attack", "say", "respawn")
#: Says and creations are what flooded the log (each an event kept forever); the others are
#: far above what a person types, and above the load generator's per-character rate at its
#: documented settings (docs/operations.md, "Rate limits").
DEFAULT_RATE_LIMITS: Mapping[str, Rate] = {
    "create": Rate(10, "m", 20),
    "say": Rate(5, "s", 10),
    **{kind: Rate(100, "s", 200) for kind in ("move", "take", "drop", "use", "attack", "respawn")},
}
_RATE = re.compile(r"(?P<count>\d+(?:\.\d+)?)/(?P<unit>[smh])(?::(?P<burst>\d+))?")


def parse_rate_limits(value: object) -> dict[str, Rate]:
    """The limits ``value`` gives, over the defaults: ``"say=5/s:10,create=10/m:20"`` (or a
    TOML table ``{say = "5/s:10"}``); ``KIND=off`` lifts one, ``off`` every one before it.

    The burst (``:10``) may be left out: it is then the count (one unit's worth).
    """
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",") if item.strip()]
    elif isinstance(value, Mapping):
        items = [f"{kind}={spec}" for kind, spec in value.items()]
        for kind, spec in value.items():
            if not isinstance(spec, str):
                raise SettingsError(
                    f'rate_limits: {kind} = {spec!r}: give a string like "5/s:10" or "off"'
                )
    else:
        raise SettingsError(
            f'rate_limits: expected "KIND=N/UNIT:BURST,...", "off" or a table, got {value!r}'
        )
    limits = dict(DEFAULT_RATE_LIMITS)
    for item in items:
        if item == "off":
            limits.clear()
            continue
        kind, equals, spec = (part.strip() for part in item.partition("="))
        if not equals:
            raise SettingsError(f"rate_limits: {item!r} is not KIND=N/UNIT:BURST or KIND=off")
        _known(kind)
        if spec == "off":
            limits.pop(kind, None)
            continue
        found = _RATE.fullmatch(spec)
        if found is None:
            raise SettingsError(
                f"rate_limits: {kind}={spec!r}: expected N/UNIT or N/UNIT:BURST with UNIT "
                "s, m or h (5/s:10: five a second, bursts of ten), or off"
            )
        count = float(found["count"])
        burst = int(found["burst"]) if found["burst"] else math.ceil(count)
        limits[kind] = _checked(kind, Rate(count, found["unit"], burst))
    return limits


def _known(kind: str) -> None:
    if kind not in RATE_LIMITED:
        known = ", ".join(RATE_LIMITED)
        raise SettingsError(f"rate_limits: unknown command {kind!r} (known: {known})")


def _checked(kind: str, rate: Rate) -> Rate:
    _known(kind)
    if rate.unit not in _UNIT_SECONDS:
        raise SettingsError(f"rate_limits: {kind}: unit must be s, m or h, got {rate.unit!r}")
    if not 0 < rate.count <= 1_000_000 or not 1 <= rate.burst <= 1_000_000:
        raise SettingsError(
            f"rate_limits: {kind}={rate}: the count must be in (0, 1000000] and the burst "
            "in 1..1000000 (or give off)"
        )
    return rate


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
    #: Lifetime of a partition lease (``--partitions auto``): a worker silent this long loses
    #: its partitions to the others; it renews them every third of it.
    lease_ttl_s: float = 10.0
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
    #: Connections of each PostgreSQL event store shard's pool (this process; snapshots get
    #: half as many, at least one).
    store_pool_size: int = 8
    #: Connections of the PostgreSQL read database's pool, and of each replica's (this process).
    read_pool_size: int = 4
    #: Token buckets of the commands, by kind (``RATE_LIMITED``); a kind not here is unlimited.
    rate_limits: dict[str, Rate] = msgspec.field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: Where ``aq serve`` listens.
    host: str = "127.0.0.1"
    port: int = 8000
    #: Where a process without an API (relays, workers) serves its Prometheus metrics; 0: none.
    metrics_port: int = 0
    #: The least level logged by the project's loggers (bootstrap/logs.py).
    log_level: str = "info"
    #: ``text`` or ``json`` (JSON lines).
    log_format: str = "text"
    #: Whether the API logs every request (``adventure_quest.access``, at INFO). Off by
    #: default: a line costs a tenth of a cached read's time (docs/operations.md, "Logs").
    access_log: bool = False
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
        if not 0.1 <= self.lease_ttl_s <= 3_600:
            raise SettingsError(f"lease_ttl_s must be in [0.1, 3600], got {self.lease_ttl_s}")
        if not 0 < self.cache_ttl_s <= 86_400:
            raise SettingsError(f"cache_ttl_s must be in (0, 86400], got {self.cache_ttl_s}")
        if not 256 <= self.max_body_bytes <= 64 * 1024 * 1024:
            raise SettingsError(f"max_body_bytes must be 256..64 MiB, got {self.max_body_bytes}")
        if not 0 <= self.max_wait_ms <= 60_000:
            raise SettingsError(f"max_wait_ms must be 0..60000, got {self.max_wait_ms}")
        for name in ("store_pool_size", "read_pool_size"):
            if not 1 <= getattr(self, name) <= 1_000:
                raise SettingsError(f"{name} must be 1..1000, got {getattr(self, name)}")
        if not 0 <= self.port <= 65_535:
            raise SettingsError(f"port must be 0..65535, got {self.port}")
        if not 0 <= self.metrics_port <= 65_535:
            raise SettingsError(f"metrics_port must be 0..65535, got {self.metrics_port}")
        if self.log_level.lower() not in LOG_LEVELS:
            raise InvalidLogLevelError(
                f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        if self.log_format not in LOG_FORMATS:
            raise InvalidLogFormatError(
                f"log_format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}"
            )
        for kind, rate in self.rate_limits.items():
            _checked(kind, rate)
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
    "AQ_LEASE_TTL": "lease_ttl_s",
    "AQ_READ_REPLICAS": "read_replicas",
    "AQ_CACHE": "cache_url",
    "AQ_CACHE_TTL": "cache_ttl_s",
    "AQ_CACHE_PREFIX": "cache_prefix",
    "AQ_ADMIN_TOKEN": "admin_token",
    "AQ_MAX_BODY_BYTES": "max_body_bytes",
    "AQ_MAX_WAIT_MS": "max_wait_ms",
    "AQ_STORE_POOL_SIZE": "store_pool_size",
    "AQ_READ_POOL_SIZE": "read_pool_size",
    "AQ_RATE_LIMITS": "rate_limits",
    "AQ_HOST": "host",
    "AQ_PORT": "port",
    "AQ_METRICS_PORT": "metrics_port",
    "AQ_LOG_LEVEL": "log_level",
    "AQ_LOG_FORMAT": "log_format",
    "AQ_ACCESS_LOG": "access_log",
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
    if "rate_limits" in values:
        values["rate_limits"] = parse_rate_limits(values["rate_limits"])
    try:
        settings = msgspec.convert(values, Settings, strict=False, dec_hook=_to_path)
    except msgspec.ValidationError as error:
        raise SettingsError(f"invalid setting: {error}") from error
    return settings.check()
