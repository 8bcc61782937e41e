"""Every error the API answers, in one body shape and one place: status, stable code, message."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping

from litestar import Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from adventure_quest.api.access_log import TAME_ID
from adventure_quest.api.access_log import request_id as current_request
from adventure_quest.api.schemas import ErrorBody, ErrorDetail
from adventure_quest.api.types import AnyRequest
from adventure_quest.app.repository import ConflictError
from adventure_quest.domain.errors import DomainError
from adventure_quest.queries.errors import NotFoundError, QueryError, StaleError
from adventure_quest.store.errors import StoreError

log = logging.getLogger(__name__)

#: Game refusals that mean "no such thing" rather than "not allowed now".
NOT_FOUND_CODES = frozenset({"player_not_found", "room_not_found"})
#: Game refusals of a request that can never succeed as written.
UNPROCESSABLE_CODES = frozenset({"invalid_name", "invalid_text", "unknown_direction"})

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An answer other than success, with its HTTP status and stable code (and the headers it
    carries: a 429's ``Retry-After``)."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def headers_of(error: Exception) -> dict[str, str]:
    """The headers the answer to ``error`` carries besides its body's (every lane sends them)."""
    return error.headers if isinstance(error, ApiError) else {}


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``x-request-id`` when it is tame (``access_log.TAME_ID``), else a new one."""
    for key, value in headers:
        if key == b"x-request-id":
            given = value.decode("latin-1")
            if TAME_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


def internal(method: str, path: str, rid: str, error: BaseException) -> ErrorBody:
    """Log an unexpected error under ``rid``; the body that answers it (500 ``internal``).

    The id becomes the request's ``request_id`` (api/access_log.py) for the rest of it, so the
    error's log line and the request's access line both carry it (JSON lines)."""
    current_request.set(rid)  # the access log resets it when the request ends
    log.error("%s %s failed [request %s]", method, path, rid, exc_info=error)
    message = f"internal error (request {rid}); the server logged it"
    return ErrorBody(ErrorDetail("internal", message, rid))


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[ErrorBody]:
    return Response(ErrorBody(ErrorDetail(code, message)), status_code=status, headers=headers)


def status_of_domain(error: DomainError) -> int:
    if error.code in NOT_FOUND_CODES:
        return 404
    return 422 if error.code in UNPROCESSABLE_CODES else 409


def outcome_of(error: Exception) -> tuple[int, str, str] | None:
    """(status, code, message) of an error a handler may raise; None for any other."""
    match error:
        case ApiError():
            return error.status, error.code, error.message
        case NotFoundError():
            return 404, error.code, error.message
        case StaleError():
            return 412, error.code, error.message
        case QueryError():
            return 400, error.code, error.message
        case DomainError():
            return status_of_domain(error), error.code, error.message
        case ConflictError():
            return 409, "conflict", str(error)
        case StoreError():
            log.warning("%s", error)
            return 503, "unavailable", f"a backing service failed: {error}"
    return None


def handle(request: AnyRequest, error: Exception) -> Response[ErrorBody]:
    """Map any exception to the error body; only a bug gives a 500 (and is logged)."""
    known = outcome_of(error)
    if known is not None:
        return error_response(*known, headers_of(error) or None)
    match error:
        case ValidationException():
            return _invalid(error)
        case HTTPException():
            code = _HTTP_CODES.get(error.status_code, "bad_request")
            if error.status_code == 400:  # the body could not be decoded
                code = "malformed_json"
            if error.status_code < 500:
                return error_response(error.status_code, code, error.detail, error.headers)
    rid = request_id(request.scope["headers"])
    body = internal(request.method, request.url.path, rid, error)
    return Response(body, status_code=500, headers={"x-request-id": rid})


def _invalid(error: ValidationException) -> Response[ErrorBody]:
    if "malformed" in error.detail:
        return error_response(400, "malformed_json", error.detail)
    details = error.extra if isinstance(error.extra, list) else []
    problems = "; ".join(
        f"{d.get('key') or d.get('source') or 'body'}: {d.get('message')}"
        for d in details
        if isinstance(d, dict)
    )
    keys = {d.get("key") for d in details if isinstance(d, dict)}
    code = "invalid_consistency_token" if keys & _TOKEN_PARAMETERS else "invalid_request"
    return error_response(422, code, problems or error.detail)


_TOKEN_PARAMETERS = {"consistency", "aq-consistency", "aq_consistency"}


_DESCRIPTIONS = {
    400: "Malformed JSON or parameters.",
    401: "No or unknown credentials.",
    403: "The credentials do not allow this.",
    404: "No such resource.",
    409: "Refused by the game's rules now, or a conflict.",
    412: "The read model did not reach the consistency token in time (code `stale`).",
    413: "Body over the configured limit.",
    422: "Valid JSON, invalid request (code names the problem).",
    429: "Too many requests; retry after Retry-After seconds (code `rate_limited`).",
    503: "A backing service is unavailable; retry.",
}


def responses(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers a route documents (with the ones every route may give)."""
    every = {400, 413, 422, 503, *statuses}
    return {
        status: ResponseSpec(ErrorBody, description=_DESCRIPTIONS[status])
        for status in sorted(every)
    }
