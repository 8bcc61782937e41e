"""The ASGI application: every route, one error shape, OpenAPI 3.1 at /openapi.json."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.exceptions import ClientException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import YamlRenderPlugin

from adventure_quest.api import admin, commands, docs_page, errors, notify, ops, reads, security
from adventure_quest.api.context import ApiContext

DESCRIPTION = """\
Adventure Quest over HTTP. Create a character (`POST /players`) and keep the token it returns:
every command for that character needs `Authorization: Bearer <token>` (the `player` scheme;
the admin endpoints take the admin token, the `admin` scheme). Commands answer with a
consistency token; pass it to a query (`?consistency=` or the `AQ-Consistency` header) to read
your own write. Errors are always `{"error": {"code": "...", "message": "..."}}`.
"""


class ApiRequest(Request[Any, Any, State]):
    """Litestar's request, except that a body nested too deeply to decode is malformed JSON.

    msgspec refuses nesting deeper than the interpreter's recursion limit (about 1,000 levels on
    CPython 3.11: a few KB) with ``RecursionError``, and Litestar's ``decode_json`` turns only
    ``msgspec.DecodeError`` into a client error, so such a body answered 500. The typed decoders
    of the fast lane fail on it before any recursion and hand it here (issue 10).
    """

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise ClientException("JSON is malformed: nested too deeply") from None


def create_app(context: ApiContext) -> Litestar:
    """The application over a wired context (the caller opens and closes the context)."""
    return Litestar(
        route_handlers=[
            *commands.routes(context),
            *reads.routes(context),
            *notify.routes(context),
            *admin.routes(context),
            *ops.routes(context),
            *docs_page.routes(),
        ],
        exception_handlers={Exception: errors.handle},
        request_class=ApiRequest,
        openapi_config=OpenAPIConfig(
            title="Adventure Quest",
            version=version("adventure-quest"),
            description=DESCRIPTION,
            components=security.COMPONENTS,
            path="/schema",
            render_plugins=[docs_page.SchemaPage(), YamlRenderPlugin()],
            create_examples=False,
        ),
        request_max_body_size=context.settings.max_body_bytes,
        debug=False,
        logging_config=None,
    )
