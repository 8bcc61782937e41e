"""Tracing on or off from the settings (bootstrap/tracing.py): off imports nothing, on without
OpenTelemetry is refused, and each exporter sends where the settings and OTEL_* say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from adventure_quest import tracing
from adventure_quest.bootstrap.tracing import SERVICE_NAMES, traced
from adventure_quest.config import Settings, SettingsError, load_settings
from tests.api.server import create, live, settings_for

#: Serves one command in process with tracing off (argv: the data directory, and "blocked" to
#: run as if OpenTelemetry were not installed), then prints the OpenTelemetry modules imported.
SERVE_ONE_COMMAND = """
import asyncio, sys
from pathlib import Path
if sys.argv[2] == "blocked":
    sys.modules["opentelemetry"] = None
import httpx
from adventure_quest.bootstrap.serve import serve
from adventure_quest.config import Settings

async def main(data_dir):
    apps, started, stop = [], asyncio.Event(), asyncio.Event()
    settings = Settings(data_dir=Path(data_dir), admin_token="a", tick_seconds=3600).check()
    job = serve(settings, started=started, stop=stop, in_process=apps.append)
    server = asyncio.create_task(job)
    await started.wait()
    transport = httpx.ASGITransport(app=apps[0])
    async with httpx.AsyncClient(transport=transport, base_url="http://aq") as client:
        answer = await client.post("/players", json={"name": "Alice"})
        assert answer.status_code == 201, answer.text
    stop.set()
    await server

asyncio.run(main(sys.argv[1]))
print(sorted(n for n, m in sys.modules.items() if m and n.split(".")[0] == "opentelemetry"))
"""

#: The ``aq`` command, in an interpreter where OpenTelemetry cannot be imported (as when the
#: ``otel`` extra is not installed).
AQ_WITHOUT_OTEL = """
import sys
sys.modules["opentelemetry"] = None
from adventure_quest.cli.main import main
sys.argv = ["aq", *sys.argv[1:]]
main()
"""


def environment(**extra: str) -> dict[str, str]:
    """This environment without any AQ_* or OTEL_* setting, plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("AQ_", "OTEL_"))}
    return {**kept, **extra}


def test_importing_the_server_imports_no_opentelemetry() -> None:
    check = "import adventure_quest.bootstrap.serve, sys; assert 'opentelemetry' not in sys.modules"
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


def serve_one_command(data_dir: Path, otel: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_ONE_COMMAND, str(data_dir), otel],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    imported: list[str] = json.loads(done.stdout.splitlines()[-1].replace("'", '"'))
    return imported


def test_with_tracing_off_a_command_is_served_without_opentelemetry(tmp_path: Path) -> None:
    assert serve_one_command(tmp_path / "data", "blocked") == []


def test_with_tracing_off_a_command_touches_no_tracing_api(tmp_path: Path) -> None:
    imported = serve_one_command(tmp_path / "data", "installed")
    # Litestar looks for its OpenTelemetry plugin when an application is made, which imports
    # the semantic conventions if they are installed; the tracing API and SDK stay unimported.
    assert [name for name in imported if not name.startswith("opentelemetry.semconv")] in (
        [],
        ["opentelemetry"],
    )


@pytest.mark.parametrize(
    ("command", "mode"), [(["serve"], "otlp"), (["process"], "console"), (["serve"], "console")]
)
def test_tracing_on_without_opentelemetry_is_refused_before_anything_is_written(
    tmp_path: Path, command: list[str], mode: str
) -> None:
    data_dir = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", AQ_WITHOUT_OTEL, *command, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(AQ_TRACING=mode),
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"error [tracing_unavailable]: tracing is on (AQ_TRACING={mode}) but OpenTelemetry is"
        " not installed: install adventure-quest[otel]\n"
    )
    assert not data_dir.exists()


def test_tracing_is_off_unless_asked_and_takes_only_its_three_values() -> None:
    assert load_settings({}).tracing == "off"
    settings = load_settings({"AQ_TRACING": "otlp", "OTEL_SERVICE_NAME": "aq-eu-1"})
    assert (settings.tracing, settings.service_name) == ("otlp", "aq-eu-1")
    with pytest.raises(SettingsError, match="tracing must be off, console, otlp, got 'jaeger'"):
        load_settings({"AQ_TRACING": "jaeger"})


async def _noop() -> None:
    return None


def printed_spans(text: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed (one JSON object each, one after the other)."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while (start := text.find("{", at)) >= 0:
        span, at = decoder.raw_decode(text, start)
        found.append(span)
    return found


@pytest.mark.parametrize(("role", "service_name"), [("worker", ""), ("api", "aq-eu-1")])
async def test_console_prints_each_span_under_the_role_s_service_name(
    capfd: pytest.CaptureFixture[str], role: str, service_name: str
) -> None:
    with traced(Settings(tracing="console", service_name=service_name), role):
        assert tracing.TRACER is not None
        await tracing.command("say", _noop())
    assert tracing.TRACER is None
    (span,) = printed_spans(capfd.readouterr().out)
    assert span["name"] == "command say"
    assert span["resource"]["attributes"]["service.name"] == (service_name or SERVICE_NAMES[role])


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps what it is sent."""

    received: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A collector listening on the loopback: its URL, and what it received."""
    received: list[tuple[str, bytes]] = []
    handler = type("Keeping", (Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def test_otlp_sends_the_spans_to_the_endpoint_otel_exporter_otlp_endpoint_names(
    collector: tuple[str, list[tuple[str, bytes]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    with traced(Settings(tracing="otlp"), "relay"):
        await tracing.command("say", _noop())
    # Leaving the block shut the provider down, which exported what was left.
    ((path, body),) = received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(body)
    (resource_spans,) = request.resource_spans
    attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert attributes["service.name"] == "aq-relay"
    assert [s.name for scope in resource_spans.scope_spans for s in scope.spans] == ["command say"]


async def test_aq_serve_with_console_tracing_prints_each_command_s_trace(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    async with live(settings_for(tmp_path, tracing="console")) as client:
        assert tracing.TRACER is not None
        player_id, _, created = await create(client, "Alice")
        seen = await client.get(
            f"/players/{player_id}", params={"consistency": created["consistency"]}
        )
        assert seen.status_code == 200, seen.text  # so the relay has published the command's events
    assert tracing.TRACER is None
    printed = printed_spans(capfd.readouterr().out)
    (request,) = [span for span in printed if span["name"] == "POST /players"]
    trace_id = request["context"]["trace_id"]
    correlation = request["attributes"][tracing.CORRELATION_ID]
    assert trace_id == "0x" + correlation.replace("-", "")
    names = {span["name"] for span in printed if span["context"]["trace_id"] == trace_id}
    assert {"command create", "append", "relay publish"} <= names
