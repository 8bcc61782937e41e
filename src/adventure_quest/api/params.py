"""Path, query and header parameters shared by the routes."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter, Parameter

from adventure_quest.queries.consistency import TOKEN_PATTERN

#: A character's id: a UUID in lower-case hex (the routes and the fast lanes match it alike).
UUID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

PlayerId = Annotated[
    str,
    Parameter(
        description="The character's id (returned when it was created).",
        pattern=f"^{UUID_PATTERN}$",
    ),
]
PlayersAfter = Annotated[
    str,
    Parameter(
        description="A room page's `next` cursor: the characters after this id.",
        pattern=f"^({UUID_PATTERN})?$",
        required=False,
    ),
]
RoomKey = Annotated[str, Parameter(description="A room's key.", max_length=64)]
ConsistencyQuery = Annotated[
    str,
    Parameter(
        description="A command's consistency token: answer only at least this fresh.",
        pattern=TOKEN_PATTERN,
        max_length=2000,
        required=False,
    ),
]
ConsistencyHeader = Annotated[
    str,
    HeaderParameter(
        name="aq-consistency",
        description="The same as the `consistency` parameter, as a header.",
        pattern=TOKEN_PATTERN,
        max_length=2000,
        required=False,
    ),
]
WaitMs = Annotated[
    int,
    Parameter(
        ge=0,
        le=10_000,
        description="How long a query with a token may wait for the read model (ms).",
    ),
]
