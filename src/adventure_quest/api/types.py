"""Types shared by the API's modules."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

AnyRequest = Request[Any, Any, State]
