"""Settings: defaults, a TOML file, AQ_* variables and flags, in that order of precedence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adventure_quest.config import RATE_LIMITED, Rate, Settings, SettingsError, load_settings


def test_flags_beat_the_environment_which_beats_the_file(tmp_path: Path) -> None:
    config = tmp_path / "aq.toml"
    config.write_text(
        'port = 9000\ncache_url = "redis://127.0.0.1:6379/1"\n'
        'read_replicas = ["postgresql://a/x", "postgresql://b/x"]\nmax_wait_ms = 100\n'
    )
    from_file = load_settings({}, config)
    assert (from_file.port, from_file.cache_url, from_file.max_wait_ms) == (
        9000,
        "redis://127.0.0.1:6379/1",
        100,
    )
    assert from_file.read_replicas == ("postgresql://a/x", "postgresql://b/x")
    env = {"AQ_PORT": "9001", "AQ_READ_REPLICAS": "postgresql://c/x, postgresql://d/x"}
    from_env = load_settings(env, config)
    assert from_env.port == 9001
    assert from_env.read_replicas == ("postgresql://c/x", "postgresql://d/x")
    assert load_settings(env, config, port=9002).port == 9002
    assert load_settings({"AQ_CONFIG": str(config)}).port == 9000


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("port = ", "not valid TOML"),
        ("prot = 1", "unknown settings prot"),
        ("port = 70000", "port must be"),
        ('port = "eighty"', "invalid setting"),
        ("max_body_bytes = 10", "max_body_bytes must be"),
        ("cache_ttl_s = 0", "cache_ttl_s must be"),
    ],
)
def test_a_bad_config_file_is_refused_naming_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    config = tmp_path / "aq.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=problem):
        load_settings({}, config)


def test_a_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings({}, tmp_path / "nope.toml")


def test_rate_limits_come_from_the_environment_or_a_table_over_the_defaults(
    tmp_path: Path,
) -> None:
    defaults = load_settings({}).rate_limits
    assert (str(defaults["say"]), str(defaults["create"])) == ("5/s:10", "10/m:20")
    assert set(defaults) == set(RATE_LIMITED)

    limits = load_settings({"AQ_RATE_LIMITS": "say=2/m:3, move=off, take=0.5/s"}).rate_limits
    assert limits["say"] == Rate(2, "m", 3)
    assert limits["say"].per_s == 2 / 60
    assert limits["take"] == Rate(0.5, "s", 1)  # no burst given: one unit's worth, at least 1
    assert "move" not in limits  # unlimited
    assert limits["create"] == defaults["create"]

    assert load_settings({"AQ_RATE_LIMITS": "off"}).rate_limits == {}
    assert load_settings({"AQ_RATE_LIMITS": "off,say=1/h:1"}).rate_limits == {
        "say": Rate(1, "h", 1)
    }

    config = tmp_path / "aq.toml"
    config.write_text('[rate_limits]\nsay = "1/s:2"\ncreate = "off"\n')
    from_table = load_settings({}, config).rate_limits
    assert from_table["say"] == Rate(1, "s", 2)
    assert "create" not in from_table
    config.write_text('rate_limits = "off"\n')
    assert load_settings({}, config).rate_limits == {}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("say=5/x:10", "say='5/x:10': expected N/UNIT"),
        ("say=five/s", "expected N/UNIT"),
        ("say=5/s:", "expected N/UNIT"),
        ("say=-1/s:1", "expected N/UNIT"),
        ("say=0/s:1", "the count must be"),
        ("say=5/s:0", "the burst"),
        ("shout=1/s:1", "unknown command 'shout'"),
        ("say", "'say' is not KIND=N/UNIT:BURST"),
    ],
)
def test_a_bad_rate_limit_is_refused_naming_it(value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(problem)) as raised:
        load_settings({"AQ_RATE_LIMITS": value})
    assert raised.value.code == "invalid_setting"


def test_a_bad_rate_limit_in_a_table_is_refused_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "aq.toml"
    config.write_text("[rate_limits]\nsay = 5\n")
    with pytest.raises(SettingsError, match="rate_limits: say = 5: give a string"):
        load_settings({}, config)
    config.write_text("rate_limits = 5\n")
    with pytest.raises(SettingsError, match="rate_limits: expected"):
        load_settings({}, config)
    with pytest.raises(SettingsError, match="burst"):
        Settings(rate_limits={"say": Rate(1, "s", 0)}).check()
