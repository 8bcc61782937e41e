"""A fast lane for well-formed commands: the same handler, without the framework's request work.

``POST /players/{id}/{move|take|drop|use|attack|say}`` with no query string, a body within the
size limit that decodes into the command's schema (the same msgspec structs the application
validates with) and a bearer token of that character runs the command here. Anything else, or
anything that fails before the command starts, goes to the application unchanged, which then
answers exactly as it always does (malformed bodies, unknown fields, missing or wrong tokens).
Once the command has started, its outcome is answered here, errors mapped by the same function
as the application's (``errors.outcome_of``). tests/api/test_fast_commands.py compares both.
"""

from __future__ import annotations

from typing import Any

import msgspec

from adventure_quest.api import auth, schemas
from adventure_quest.api.context import ApiContext
from adventure_quest.api.errors import ApiError, headers_of, outcome_of
from adventure_quest.api.lanes import COMMAND_PATH, COMMANDS
from adventure_quest.store.errors import StoreUnavailableError

_encode = msgspec.json.Encoder().encode
_DECODERS = {verb: msgspec.json.Decoder(lane.body) for verb, lane in COMMANDS.items()}


class FastCommands:
    """Wraps the ASGI application; see the module docstring."""

    def __init__(self, app: Any, context: ApiContext) -> None:
        self.app = app
        self.context = context
        self.limit = context.settings.max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            await self.app(scope, receive, send)
            return
        found = COMMAND_PATH.match(scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        body, complete = await _read(receive, self.limit)
        prepared = await self._prepare(found[1], found[2], scope, body) if complete else None
        if prepared is None:
            await self.app(scope, _replay(body, complete, receive), send)
            return
        await self._run(found[1], found[2], prepared, send)

    async def _prepare(self, player_id: str, verb: str, scope: dict[str, Any], body: bytes) -> Any:
        """The decoded body when the command may run here; None to leave it to the app."""
        try:
            decoded = _DECODERS[verb].decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            # RecursionError: nesting past the decoder's depth (the strict schemas refuse such
            # bodies before recursing; one that skipped unknown fields would not). The
            # application answers it, as every other undecodable body, with malformed_json.
            return None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        token = auth.bearer_token(header.decode("latin-1"))
        if token is None:
            return None
        try:
            await auth.require_player(self.context.game, token, player_id)
        except (ApiError, StoreUnavailableError):
            return None  # the application answers, in the one error shape
        return decoded

    async def _run(self, player_id: str, verb: str, decoded: Any, send: Any) -> None:
        game, call = self.context.game, COMMANDS[verb].call
        headers = [(b"content-type", b"application/json")]
        try:
            outcome, token = await self.context.command(
                verb, lambda: call(game, player_id, decoded), by=player_id
            )
        except Exception as error:
            known = outcome_of(error)
            if known is None:
                raise
            status, code, message = known
            body = _encode(schemas.ErrorBody(schemas.ErrorDetail(code, message)))
            headers += [(k.lower().encode(), v.encode()) for k, v in headers_of(error).items()]
        else:
            status, body = 200, _encode(self.context.result(outcome, token))
            headers.append((b"aq-consistency", token.encode()))
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _read(receive: Any, limit: int) -> tuple[bytes, bool]:
    """The body, and whether it was read whole within ``limit`` (else what was read so far)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, complete: bool, receive: Any) -> Any:
    """A ``receive`` that gives the body read so far again, then whatever is still to come."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": not complete}
        return dict(await receive())

    return replayed
