"""The responses the monitoring endpoints answer with: JSON, errors, and never cached.

What the endpoints report (health, alerts, the gate's refusals) changes from one second to the
next and may be private, so it carries ``Cache-Control: no-store``: a proxy or browser must not
answer the next request with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

__all__ = ["NO_STORE", "LenientJSONResponse", "error_response", "json_response", "shown"]

NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store"}


def json_response(body: Any, status_code: int = 200, *, media_type: str | None = None,
                  headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``body`` as JSON, not to be stored; ``headers`` are added to ``Cache-Control``."""
    return JSONResponse(body, status_code=status_code, media_type=media_type,
                        headers={**NO_STORE, **(headers or {})})


def error_response(message: str, status_code: int,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """``{"error": message}``, not to be stored: the message says what to do instead."""
    return json_response({"error": message}, status_code, headers=headers)


def shown(value: object, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error message quotes what the client sent
    without echoing a megabyte of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class LenientJSONResponse(JSONResponse):
    """JSON that tolerates what health details may hold (datetimes, sets): shown as strings."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=str, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")
