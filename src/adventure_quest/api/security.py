"""The API's two credentials as the OpenAPI document declares them (``api/auth.py`` checks them).

A route that needs a character's token declares ``security=PLAYER``, one that needs the admin
token ``security=ADMIN``, and a route that needs neither declares nothing. Both are bearer tokens
in the same header, but they are different secrets with different reach, so they are two schemes:
the explorer at /docs asks for each on its own, and a generated client knows which call takes
which (tests/api/test_openapi.py holds every route to what it declares).
"""

from __future__ import annotations

from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme

PLAYER: list[SecurityRequirement] = [{"player": []}]
ADMIN: list[SecurityRequirement] = [{"admin": []}]

COMPONENTS = Components(
    security_schemes={
        "player": SecurityScheme(
            type="http",
            scheme="bearer",
            description=(
                "A character's token (`aq_…`), answered once by `POST /players`: "
                "it acts for that character only."
            ),
        ),
        "admin": SecurityScheme(
            type="http",
            scheme="bearer",
            description=(
                "The admin token: `AQ_ADMIN_TOKEN`, or the one `aq serve` made in "
                "`<data dir>/admin-token`."
            ),
        ),
    }
)
