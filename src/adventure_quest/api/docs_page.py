"""The API explorer at /docs: Swagger UI over /openapi.json, every file served by this server.

Swagger UI's files come from the ``swagger-ui-bundle-v2`` package (a runtime dependency, so the
wheel serves them as the checkout does) under ``/docs/assets``; the page loads nothing from the
network. Swagger UI would otherwise send the document's URL to validator.swagger.io for its
validity badge: ``validatorUrl`` is off.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import Parameter
from litestar.response import File
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from adventure_quest.api.errors import ApiError

ASSETS = "/docs/assets"
#: The files the page needs (and their source maps, for a browser's developer tools): nothing
#: else of the bundle is served, its sample index.html loads a demo API from the network.
_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "swagger-ui.css.map": "application/json",
    "swagger-ui-bundle.js.map": "application/json",
}
_DIRECTORY = Path(str(swagger_ui_path))

#: Swagger UI's options (https://swagger.io/docs/open-source-tools/swagger-ui/usage/configuration/).
_OPTIONS: dict[str, Any] = {
    "url": "/openapi.json",
    "dom_id": "#explorer",
    "deepLinking": True,
    "docExpansion": "list",
    "displayOperationId": True,
    "displayRequestDuration": True,
    "filter": True,
    "showExtensions": True,
    "validatorUrl": None,
}


def render(document: dict[str, Any]) -> str:
    """The explorer's page, titled after the OpenAPI document (as a dict) it shows."""
    info = document.get("info", {})
    title = html.escape(f"{info.get('title', '')} API {info.get('version', '')}".strip())
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
<style>body {{ margin: 0 }}</style>
</head>
<body>
<div id="explorer"><noscript>The explorer needs JavaScript. The API's description is
<a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</noscript></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({json.dumps(_OPTIONS)});</script>
</body>
</html>
"""


def routes() -> list[HTTPRouteHandler]:
    @get(f"{ASSETS}/{{name:str}}", include_in_schema=False)
    async def asset(name: Annotated[str, Parameter(max_length=64)]) -> File:
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise ApiError(404, "not_found", f"the explorer has no file {name!r}")
        return File(_DIRECTORY / name, media_type=media_type, content_disposition_type="inline")

    return [asset]


class SchemaPage(OpenAPIRenderPlugin):
    """The same explorer at /schema and /schema/swagger, where Litestar's pages used to be.

    Litestar serves its own pages there when given no render plugin, each loading its scripts
    from a CDN; with this plugin (and ``YamlRenderPlugin``) /schema serves this explorer, and
    /schema/openapi.json and /schema/openapi.yaml (.yml) the document as before.
    """

    def __init__(self) -> None:
        super().__init__(path=["/", "/swagger"])

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return render(openapi_schema).encode()
