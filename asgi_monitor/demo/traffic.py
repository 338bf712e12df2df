"""Synthetic traffic for the demo: steady browsing, slow requests, logins and error bursts.

Every 60 s there is a 20 s incident in which a third of the requests hit the failing endpoint,
enough to fire the HighErrorRate alert (with the demo's 30 s window) and let it resolve after.
Requests go over real HTTP to the demo server on loopback, like a user's would.
"""

from __future__ import annotations

import asyncio
import random
import time

import httpx

__all__ = ["generate_traffic"]

INCIDENT_PERIOD = 60.0
INCIDENT_SECONDS = 20.0


def _pick(in_incident: bool) -> tuple[str, str]:
    roll = random.random()
    if in_incident and roll < 0.35:
        return "GET", "/error"
    if roll < 0.40:
        return "GET", f"/items/{random.randint(1, 500)}"
    if roll < 0.55:
        return "GET", f"/cache/{random.choice(['a', 'b', 'c', 'd', random.random()])}"
    if roll < 0.70:
        return "GET", f"/shop/orders/{random.randint(1, 60)}"
    if roll < 0.78:
        return "POST", "/login"
    if roll < 0.83:
        return "GET", "/slow"
    if roll < 0.86:
        return "GET", "/error"
    if roll < 0.90:
        return "GET", f"/no-such-page-{random.randint(1, 10**6)}"
    return "GET", "/"


async def _send(client: httpx.AsyncClient, method: str, path: str,
                body: dict[str, str] | None) -> object:
    try:
        return await client.request(method, path, json=body)
    except httpx.HTTPError:
        return None  # the server restarting or overloaded is not the demo's problem


async def generate_traffic(base_url: str, requests_per_second: float = 15.0,
                           duration: float | None = None) -> int:
    """Send requests until cancelled (or for ``duration`` s); returns how many were sent."""
    started = time.monotonic()
    sent = 0
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=base_url, timeout=10, limits=limits) as client:
        pending: set[asyncio.Task[object]] = set()
        while duration is None or time.monotonic() - started < duration:
            in_incident = (time.monotonic() - started) % INCIDENT_PERIOD > (
                INCIDENT_PERIOD - INCIDENT_SECONDS)
            method, path = _pick(in_incident)
            body = {"user": "demo", "password": "demo" if random.random() < 0.7 else "wrong"}
            task: asyncio.Task[object] = asyncio.ensure_future(
                _send(client, method, path, body if method == "POST" else None))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            await asyncio.sleep(random.expovariate(requests_per_second))
        await asyncio.gather(*pending, return_exceptions=True)
    return sent
