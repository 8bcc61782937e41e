"""Who may do what: a character's secret token for its commands, an admin token for the rest.

A token is shown once, when the character is created; only its SHA-256 hash is recorded (on the
character's stream), so neither the event log nor the read models can give it away.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from adventure_quest.api.errors import ApiError
from adventure_quest.api.types import AnyRequest
from adventure_quest.app.game import Game

TOKEN_PREFIX = "aq_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer …`` header's value; None if it has none."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer(request: AnyRequest) -> str:
    """The token of ``Authorization: Bearer …`` (401 ``unauthenticated`` without one)."""
    token = bearer_token(request.headers.get("authorization", ""))
    if token is None:
        raise ApiError(401, "unauthenticated", "send the token as 'Authorization: Bearer <token>'")
    return token


async def require_player(game: Game, token: str, player_id: str) -> None:
    """Refuse (403 ``forbidden``) unless ``token`` is the token of ``player_id``."""
    loaded = await game.repository.load(game.players, game.players.stream_id(player_id))
    expected = loaded.state.token_hash
    if not expected or not hmac.compare_digest(expected, hash_token(token)):
        raise ApiError(403, "forbidden", "this token does not act for that character")


def require_admin(admin_token: str, token: str) -> None:
    """Refuse (403 ``forbidden``) unless ``token`` is the configured admin token."""
    if not admin_token:
        raise ApiError(403, "forbidden", "admin operations are disabled: set AQ_ADMIN_TOKEN")
    if not hmac.compare_digest(admin_token.encode(), token.encode()):
        raise ApiError(403, "forbidden", "this token is not the admin token")
