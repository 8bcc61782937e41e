"""The explorer at /docs in headless Chromium (Debian's chromium and chromium-driver, which
.ci/run installs): Swagger UI renders every operation of the document with its summary, id and
lock, and the page asks no host but the server for anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import anyio.to_thread
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.api.server import live, settings_for

#: Per operation block Swagger UI drew: method, path, operation id, summary, and whether it
#: shows the lock of an operation that needs credentials.
ROWS = """
return [...document.querySelectorAll('.opblock')].map(block => [
  block.querySelector('.opblock-summary-method').textContent.toLowerCase(),
  block.querySelector('.opblock-summary-path').dataset.path,
  block.querySelector('.opblock-summary-operation-id')?.textContent ?? '',
  block.querySelector('.opblock-summary-description')?.textContent ?? '',
  block.querySelector('.authorization__btn') !== null,
]);
"""


class Page(NamedTuple):
    title: str
    rows: set[tuple[str, str, str, str, bool]]
    authorize_button: bool
    requested: list[str]
    console: list[dict[str, Any]]


def chromium() -> tuple[str, str]:
    """The browser and its driver; the test fails without them (in CI too: it never skips)."""
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.fail(
            "the explorer test needs Debian's chromium and chromium-driver: "
            "apt-get install -y --no-install-recommends chromium chromium-driver"
        )
    return browser, driver


def logs(browser: webdriver.Chrome, kind: str) -> list[dict[str, Any]]:
    """The entries of one of the logs ``goog:loggingPrefs`` asked for, since the last call."""
    entries: list[dict[str, Any]] = browser.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def browse(url: str, operations: int, profile: Path) -> Page:
    """Open ``url`` until Swagger UI drew ``operations`` blocks; what the page showed and did."""
    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        browser.get("about:blank")
        logs(browser, "performance")  # drops what the browser's start page loaded
        browser.get(url)
        WebDriverWait(browser, 30).until(
            lambda b: len(b.find_elements(By.CSS_SELECTOR, ".opblock")) >= operations
        )
        rows = {tuple(row) for row in browser.execute_script(ROWS)}
        authorize = bool(browser.find_elements(By.CSS_SELECTOR, ".auth-wrapper .authorize"))
        events = [json.loads(entry["message"])["message"] for entry in logs(browser, "performance")]
        requested = [
            e["params"]["request"]["url"]
            for e in events
            if e["method"] == "Network.requestWillBeSent"
        ]
        return Page(browser.title, rows, authorize, requested, logs(browser, "browser"))
    finally:
        browser.quit()


async def test_the_explorer_renders_every_operation_and_loads_only_local_files(
    tmp_path: Path,
) -> None:
    chromium()
    settings = settings_for(tmp_path / "data")
    async with live(settings, socket=True) as client:  # a real port, for the browser
        document = (await client.get("/openapi.json")).json()
        expected = {
            (method, path, op["operationId"], op["summary"], "security" in op)
            for path, methods in document["paths"].items()
            for method, op in methods.items()
        }
        origin = f"http://{settings.host}:{settings.port}"
        page = await anyio.to_thread.run_sync(
            browse, f"{origin}/docs", len(expected), tmp_path / "chromium"
        )
    assert page.title == f"Adventure Quest API {document['info']['version']}"
    assert page.rows == expected
    assert ("post", "/players/{player_id}/move", "movePlayer", "Walk through an exit", True) in (
        page.rows
    )
    assert page.authorize_button
    assert f"{origin}/openapi.json" in page.requested
    assert f"{origin}/docs/assets/swagger-ui-bundle.js" in page.requested
    # Every request over the network (not data: or the browser's own chrome: pages) is the server's.
    network = [u for u in page.requested if urlsplit(u).scheme in {"http", "https", "ws", "wss"}]
    assert [u for u in network if not u.startswith(f"{origin}/")] == []
    assert [entry for entry in page.console if entry["level"] == "SEVERE"] == []
