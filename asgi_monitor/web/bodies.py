"""Request bodies of the admin endpoints: read with a size cap, parsed as JSON with a depth cap.

Whatever a client sends, the answer is a 4xx with a message, never a 500: a body over the cap is
a 413 (refused from its ``Content-Length`` before it is read, or as soon as the stream passes
the cap), a body still arriving after ``timeout`` seconds is a 408 (an authenticated client
sending a byte now and then would otherwise hold a connection and a task for good; servers
time out idle connections, not slow bodies), and JSON that is malformed, not UTF-8, nested
deeper than Python's recursion limit (``json`` raises RecursionError) or holding an integer
too long to convert is a 400.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request

__all__ = ["BODY_TIMEOUT_SECONDS", "MAX_BODY_BYTES", "BodyError", "parse_json", "read_body",
           "read_json"]

# The largest admin request (a silence with its matchers and a comment) is well under 1 KiB.
MAX_BODY_BYTES = 64 * 1024
# What MONITORING_ADMIN_BODY_TIMEOUT defaults to: ample for 64 KiB on any link.
BODY_TIMEOUT_SECONDS = 10.0


class BodyError(Exception):
    """The body cannot be used; ``status`` is the code to answer with, the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def read_json(request: Request, *, max_bytes: int = MAX_BODY_BYTES,
                    timeout: float = BODY_TIMEOUT_SECONDS) -> Any:
    """The body parsed as JSON; :class:`BodyError` if it is too large, too slow or not usable
    JSON."""
    return parse_json(await read_body(request, max_bytes=max_bytes, timeout=timeout))


async def read_body(request: Request, *, max_bytes: int = MAX_BODY_BYTES,
                    timeout: float = BODY_TIMEOUT_SECONDS) -> bytes:
    """The raw body; :class:`BodyError` (413) as soon as it is known to be over ``max_bytes``,
    (408) if it has not all arrived within ``timeout`` seconds."""
    too_large = BodyError(f"the body is larger than {max_bytes} bytes", 413)
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise too_large

    async def collect() -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(collect(), timeout)
    except asyncio.TimeoutError:
        raise BodyError(f"the body did not arrive within {timeout:g} seconds", 408) from None


def parse_json(raw: bytes) -> Any:
    """``raw`` parsed as JSON; :class:`BodyError` (400) with the reason if it is not usable."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise BodyError("the body's JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise BodyError("the body is not UTF-8 text") from None
    except ValueError as exc:
        # JSONDecodeError (with its position), or an integer past Python's digit limit.
        reason = str(exc)
        reason = reason if len(reason) <= 120 else reason[:120] + "..."
        raise BodyError(f"the body is not valid JSON: {reason}") from None
