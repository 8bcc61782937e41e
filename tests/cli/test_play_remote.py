"""``aq play --url``: the terminal game against a live server, with piped input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.api.server import Background, settings_for


def aq(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("aq")), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_playing_over_http_creates_acts_and_resumes_with_the_kept_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    with Background(settings_for(tmp_path / "data")) as server:
        first = aq(
            "play", "--url", server.url, "--tokens", str(tokens),
            stdin="Remy\ntake torch\nn\ni\nup\nquit\n",
        )  # fmt: skip
        assert first.returncode == 0, first.stderr
        assert "Welcome, Remy. Your adventure begins." in first.stdout
        assert "You take the torch." in first.stdout
        assert "== Market Street ==" in first.stdout
        assert "torch" in first.stdout.split("You carry")[1]
        assert "You cannot go up from here." in first.stdout
        assert tokens.stat().st_mode & 0o777 == 0o600
        again = aq("play", "--url", server.url, "--tokens", str(tokens), stdin="Remy\ns\nquit\n")
        assert "Welcome back, Remy." in again.stdout
        assert "== Village Square ==" in again.stdout  # it acted: the token was kept
        player_id = httpx.post(f"{server.url}/players", json={"name": "Other"}).json()["player"][
            "player_id"
        ]
        foreign = aq("play", "--url", server.url, "--tokens", str(tokens), stdin="Other\nn\nquit\n")
        assert "no token for it" in foreign.stdout
        state = httpx.get(f"{server.url}/players/{player_id}/state").json()
        assert state["state"]["room"] == "village_square"  # nothing happened to Other


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    done = aq("play", "--url", "http://127.0.0.1:9", "--name", "X", stdin="")
    assert done.returncode == 2
    assert "error [server_unreachable]" in done.stderr
