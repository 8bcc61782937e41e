"""The explorer's page and files over HTTP: /docs and /schema serve one page, which names only
files of this server, and the server has each of them (the browser test renders the page)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.api.server import error_code, live, settings_for

MEDIA_TYPES = {
    "js": "text/javascript",
    "css": "text/css",
    "png": "image/png",
    "json": "application/json",
}


async def test_the_page_loads_only_files_this_server_serves(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        links = re.findall(r'(?:src|href)="([^"]*)"', page.text)
        assert "/docs/assets/swagger-ui-bundle.js" in links
        assert "/docs/assets/swagger-ui.css" in links
        assert '"url": "/openapi.json"' in page.text
        assert '"validatorUrl": null' in page.text  # else it sends the document's URL out
        for link in links:
            assert link.startswith("/"), link
            answer = await client.get(link)
            assert answer.status_code == 200, link
            assert len(answer.content) > 500, link
            media_type = MEDIA_TYPES[link.rsplit(".", 1)[1]]
            assert answer.headers["content-type"].startswith(media_type), link


async def test_schema_serves_the_same_page_and_still_the_document(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        page = (await client.get("/docs")).text
        for path in ("/schema", "/schema/swagger"):
            answer = await client.get(path)
            assert answer.status_code == 200, path
            assert answer.text == page, path
        document = (await client.get("/schema/openapi.json")).json()
        assert "/players/{player_id}/move" in document["paths"]
        yaml = await client.get("/schema/openapi.yaml")
        assert yaml.status_code == 200
        assert "movePlayer" in yaml.text


async def test_a_file_the_explorer_does_not_have_is_a_404_with_a_code(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        # index.html is in the bundle, but loads a demo API from the network: not served.
        for name in ("index.html", "swagger-initializer.js", "nothing.js", "..%2Fswagger-ui.css"):
            answer = await client.get(f"/docs/assets/{name}")
            assert (answer.status_code, error_code(answer)) == (404, "not_found"), name
        too_long = await client.get(f"/docs/assets/{'x' * 100}.js")
        assert (too_long.status_code, error_code(too_long)) == (422, "invalid_request")
