"""Settings: defaults, a TOML file, AQ_* variables and flags, in that order of precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from adventure_quest.config import SettingsError, load_settings


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
