"""The OpenAPI document at /openapi.json: readable unique operation ids, the package's version,
and a bearer scheme declared on exactly the routes that refuse a request without a token."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

from tests.api.server import create, live, settings_for

#: A verb, then one or more capitalised words: movePlayer, listDeadLetters.
READABLE = re.compile(r"^[a-z]+(?:[A-Z][a-z]+)+$")
#: A request body each command's schema accepts, so that a refusal is about the token alone.
BODIES: dict[str, dict[str, str]] = {
    "CreateCharacter": {"name": "Second"},
    "Move": {"direction": "north"},
    "Take": {"item": "torch"},
    "Drop": {"item": "torch"},
    "Use": {"item": "torch"},
    "Attack": {"target": "rat"},
    "Say": {"text": "hello"},
}
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

Operation = tuple[str, str, dict[str, Any]]


def operations(document: dict[str, Any]) -> list[Operation]:
    """(method, path, operation) for every operation of the document."""
    return [
        (method, path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


async def request(
    client: httpx.AsyncClient, operation: Operation, player_id: str, token: str | None
) -> httpx.Response:
    """The operation called with real arguments and a valid body, and ``token`` if any."""
    method, template, spec = operation
    arguments = {"player_id": player_id, "room": "village_square", "projection": "room_view"}
    path = re.sub(r"\{(\w+)\}", lambda m: arguments[m[1]], template)
    content = spec.get("requestBody", {}).get("content", {}).get("application/json")
    body = BODIES[content["schema"]["$ref"].rsplit("/", 1)[1]] if content else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.request(method, path, json=body, headers=headers)


async def document_of(client: httpx.AsyncClient) -> dict[str, Any]:
    answer = await client.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


async def test_operation_ids_are_readable_unique_and_set_on_every_operation(
    tmp_path: Path,
) -> None:
    async with live(settings_for(tmp_path)) as client:
        document = await document_of(client)
    ids = {(method, path): op.get("operationId", "") for method, path, op in operations(document)}
    assert len(ids) > 20
    assert len(set(ids.values())) == len(ids), sorted(ids.values())
    assert [i for i in ids.values() if not READABLE.match(i)] == []
    assert ids[("post", "/players")] == "createPlayer"
    assert ids[("post", "/players/{player_id}/move")] == "movePlayer"
    assert ids[("get", "/rooms/{room}")] == "getRoom"
    assert ids[("get", "/players/{player_id}/feed")] == "streamRoomFeed"
    assert ids[("post", "/admin/projections/{projection}/rebuild")] == "rebuildProjection"
    assert ids[("get", "/readyz")] == "getReadiness"


async def test_the_document_version_is_the_package_version(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        document = await document_of(client)
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert document["info"]["version"] == version("adventure-quest") == declared


async def test_two_bearer_schemes_player_and_admin(tmp_path: Path) -> None:
    async with live(settings_for(tmp_path)) as client:
        document = await document_of(client)
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {"player", "admin"}
    for scheme in schemes.values():
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        assert scheme["description"]
    # Each operation declares one of them (no scopes), or none.
    declared = {
        tuple((name, tuple(scopes)) for r in op.get("security", []) for name, scopes in r.items())
        for _, _, op in operations(document)
    }
    assert declared == {(), (("player", ()),), (("admin", ()),)}


async def test_the_routes_that_refuse_a_request_without_a_token_are_those_that_declare_one(
    tmp_path: Path,
) -> None:
    async with live(settings_for(tmp_path)) as client:
        document = await document_of(client)
        player_id, _, _ = await create(client, "First")
        refused = set()
        for operation in operations(document):
            answer = await request(client, operation, player_id, None)
            assert answer.status_code < 500, (operation[:2], answer.text)
            if answer.status_code == 401:
                refused.add(operation[:2])
        declaring = {(m, path) for m, path, op in operations(document) if "security" in op}
        assert refused == declaring
        assert ("post", "/players/{player_id}/move") in declaring
        assert ("get", "/admin/status") in declaring
        assert ("get", "/players/{player_id}") not in declaring


async def test_a_route_of_either_scheme_refuses_the_other_scheme_token(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with live(settings) as client:
        document = await document_of(client)
        player_id, token, _ = await create(client, "First")
        tokens = {"player": settings.admin_token, "admin": token}  # each the other's token
        tried: dict[str, int] = {}
        for operation in operations(document):
            for requirement in operation[2].get("security", []):
                (scheme,) = requirement
                answer = await request(client, operation, player_id, tokens[scheme])
                assert answer.status_code == 403, (operation[:2], scheme, answer.text)
                tried[scheme] = tried.get(scheme, 0) + 1
        assert tried == {"player": 8, "admin": 6}
