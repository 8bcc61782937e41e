"""Logging configured in one place (bootstrap/logs.py): the text and JSON formats, the levels,
repeated warnings held back, and the settings and options that choose them."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adventure_quest.bootstrap import logs
from adventure_quest.config import Settings, SettingsError, load_settings
from tests.cli.test_logs_help import aq

#: A line of the text format: time (ISO 8601, UTC, milliseconds), level, logger, message.
TEXT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$"
)


@pytest.fixture
def configured() -> Iterator[Any]:
    """``logs.configure`` to a buffer; what it installed is removed when the test ends."""
    buffer = io.StringIO()

    def configure(**values: Any) -> io.StringIO:
        logs.configure(Settings(**values).check(), buffer)
        return buffer

    try:
        yield configure
    finally:
        logs.reset()


def test_a_text_line_has_the_utc_time_the_level_the_logger_and_the_message(
    configured: Any,
) -> None:
    buffer = configured()
    logging.getLogger("adventure_quest.processing.relay").warning("shard %d: %s", 1, "down")

    [line] = buffer.getvalue().splitlines()
    found = TEXT_LINE.match(line)
    assert found is not None, line
    assert found.groups()[1:] == ("WARNING", "adventure_quest.processing.relay", "shard 1: down")
    logged = datetime.fromisoformat(found[1])
    assert logged.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - logged) < timedelta(seconds=5)


def test_a_json_line_is_one_object_with_time_level_logger_message_and_the_traceback(
    configured: Any,
) -> None:
    buffer = configured(log_format="json")
    log = logging.getLogger("adventure_quest.api.errors")
    log.info("plain %s", "info")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("GET /world failed")

    plain, failed = (json.loads(line) for line in buffer.getvalue().splitlines())
    assert set(plain) == {"time", "level", "logger", "message"}
    assert (plain["level"], plain["logger"], plain["message"]) == (
        "INFO",
        "adventure_quest.api.errors",
        "plain info",
    )
    assert datetime.fromisoformat(plain["time"]).utcoffset() == timedelta(0)
    assert set(failed) == {"time", "level", "logger", "message", "exc_info"}
    assert failed["level"] == "ERROR"
    assert failed["exc_info"].startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in failed["exc_info"]


def test_another_loggers_extra_fields_stay_out_of_the_json_line(configured: Any) -> None:
    buffer = configured(log_format="json")
    logging.getLogger("some.library").warning("opened", extra={"path": Path("/x"), "status": 3})
    [line] = (json.loads(text) for text in buffer.getvalue().splitlines())
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["message"] == "opened"


def messages(buffer: io.StringIO) -> list[str]:
    return [TEXT_LINE.match(line)[4] for line in buffer.getvalue().splitlines()]  # type: ignore[index]


def log_everything() -> None:
    for name in ("adventure_quest.app.game", "asyncpg.pool"):
        for level in (logging.DEBUG, logging.INFO, logging.WARNING):
            logging.getLogger(name).log(level, "%s %s", name, logging.getLevelName(level))


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        pytest.param("warning", ["adventure_quest.app.game WARNING", "asyncpg.pool WARNING"]),
        pytest.param(
            "INFO",
            [
                "adventure_quest.app.game INFO",
                "adventure_quest.app.game WARNING",
                "asyncpg.pool WARNING",
            ],
            id="info, libraries at warning",
        ),
        pytest.param(
            "debug",
            [
                f"{name} {level}"
                for name in ("adventure_quest.app.game", "asyncpg.pool")
                for level in ("DEBUG", "INFO", "WARNING")
            ],
            id="debug, libraries too",
        ),
    ],
)
def test_the_level_applies_to_the_project_and_libraries_speak_up_only_at_debug(
    configured: Any, level: str, shown: list[str]
) -> None:
    buffer = configured(log_level=level)
    log_everything()
    assert messages(buffer) == shown


def test_configuring_twice_writes_each_line_once(configured: Any) -> None:
    configured()
    buffer = configured()
    logging.getLogger("adventure_quest.processing.relay").warning("once")
    assert messages(buffer) == ["once"]
    assert sum(isinstance(h, logs.StreamHandler) for h in logging.getLogger().handlers) == 1


def test_settings_read_the_log_variables_and_refuse_bad_values_with_their_codes() -> None:
    read = load_settings({"AQ_LOG_LEVEL": "DEBUG", "AQ_LOG_FORMAT": "json", "AQ_ACCESS_LOG": "0"})
    assert (read.log_level, read.log_format, read.access_log) == ("DEBUG", "json", False)
    assert load_settings({"AQ_ACCESS_LOG": "1"}).access_log is True
    assert load_settings({}).access_log is False  # off unless asked for: it costs
    for env, code in (({"AQ_LOG_LEVEL": "loud"}, "invalid_log_level"),
                      ({"AQ_LOG_FORMAT": "xml"}, "invalid_log_format")):  # fmt: skip
        with pytest.raises(SettingsError) as refused:
            load_settings(env)
        assert refused.value.code == code


# -- the repeat filter ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(
    template: str = "partition %d: NATS down",
    *args: object,
    name: str = "adventure_quest.processing.projection_worker",
    level: int = logging.WARNING,
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, template, args or (0,), None)


def test_a_repeated_warning_passes_once_per_window_and_says_how_often_it_was_held_back() -> None:
    clock = FakeClock()
    repeats = logs.RepeatFilter(window_s=10.0, clock=clock)
    passed = []
    for second in range(25):  # one a second; the argument changes, the template does not
        clock.now = 1000.0 + second
        one = record("partition %d: NATS down", second)
        if repeats.filter(one):
            passed.append((second, one.getMessage()))
    assert passed == [
        (0, "partition 0: NATS down"),
        (10, "partition 10: NATS down (repeated 9 times)"),
        (20, "partition 20: NATS down (repeated 9 times)"),
    ]
    # Another template, level or logger is another key; INFO is never held back.
    assert repeats.filter(record("another %d"))
    assert repeats.filter(record(level=logging.ERROR))
    assert repeats.filter(record(name="adventure_quest.processing.relay"))
    assert all(repeats.filter(record(level=logging.INFO)) for _ in range(5))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 4, allow_nan=False)), max_size=200))
def test_whatever_comes_one_line_per_window_per_key_and_the_counts_add_up(
    arrivals: list[tuple[int, float]],
) -> None:
    window = 10.0
    clock = FakeClock()
    repeats = logs.RepeatFilter(window_s=window, clock=clock)
    keys = range(3)
    passed: dict[int, list[float]] = {key: [] for key in keys}
    arrived = dict.fromkeys(keys, 0)
    reported = dict.fromkeys(keys, 0)

    def offer(key: int) -> None:
        one = record(f"template {key} %s")
        if repeats.filter(one):
            passed[key].append(clock.now)
            reported[key] += one.__dict__.get("repeated", 0)

    for key, wait in arrivals:
        clock.now += wait
        arrived[key] += 1
        offer(key)
    for key in keys:
        if arrived[key]:
            assert passed[key], "the first of each key passes"
        assert all(b - a >= window for a, b in zip(passed[key], passed[key][1:], strict=False))
    clock.now += window + 1  # one more of each, after a quiet window, reports the held back
    for key in keys:
        arrived[key] += 1
        offer(key)
        assert reported[key] == arrived[key] - len(passed[key])


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        pytest.param(["--log-level", "loud", "status"], {}, "invalid_log_level", id="flag"),
        pytest.param(
            ["--log-level", "loud", "loadtest", "--url", "http://127.0.0.1:9"],
            {},
            "invalid_log_level",
            id="flag, a command that reads no settings",
        ),
        pytest.param(["status"], {"AQ_LOG_LEVEL": "loud"}, "invalid_log_level", id="variable"),
        pytest.param(["--log-format", "xml", "status"], {}, "invalid_log_format", id="format"),
        pytest.param(["status"], {"AQ_LOG_FORMAT": "xml"}, "invalid_log_format", id="AQ_FORMAT"),
    ],
)
def test_a_bad_log_setting_is_a_clear_error_with_its_code(
    tmp_path: Path, args: list[str], env: dict[str, str], code: str
) -> None:
    refused = aq(*args, env={"AQ_DATA_DIR": str(tmp_path), **env})
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.startswith(f"error [{code}]: "), refused.stderr
    assert "Traceback" not in refused.output


def test_a_command_run_in_process_leaves_no_logging_behind(tmp_path: Path) -> None:
    done = aq("--log-format", "json", "db", "upgrade", "--data-dir", str(tmp_path))
    assert done.exit_code == 0, done.output
    assert not [h for h in logging.getLogger().handlers if isinstance(h, logs.StreamHandler)]
