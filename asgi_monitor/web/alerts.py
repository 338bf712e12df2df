"""Alerts API (admin): active alerts, history, statistics and silences.

Errors answer ``{"error": ...}`` with a message that says what to send instead.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..alerting.silences import SilencesBusy
from .bodies import BodyError, read_json
from .parts import MonitorParts
from .responses import error_response, json_response, shown

__all__ = ["MAX_HISTORY_LIMIT", "MAX_SILENCE_SECONDS", "AlertEndpoints"]

# A larger ?limit= is capped to this (the history holds ALERT_HISTORY_SIZE alerts at most).
MAX_HISTORY_LIMIT = 1000
DEFAULT_HISTORY_LIMIT = 100
# A silence longer than a year is a forgotten one (and 1e308 seconds overflows a datetime).
MAX_SILENCE_SECONDS = 365 * 24 * 3600
_SILENCE_FIELDS = {"rule", "matchers", "duration_minutes", "duration_seconds", "comment"}


class AlertEndpoints:
    """The handlers, bound to one monitor."""

    def __init__(self, monitor: MonitorParts) -> None:
        self.alerts = monitor.alerts
        self._body_timeout = monitor.config.gate.body_timeout_seconds

    async def active(self, request: Request) -> Response:
        return json_response({"alerts": [alert.to_dict() for alert in self.alerts.active()]})

    async def history(self, request: Request) -> Response:
        raw = request.query_params.get("limit")
        limit = DEFAULT_HISTORY_LIMIT
        if raw is not None:
            try:
                limit = int(raw)
            except ValueError:
                limit = 0
            if limit < 1:
                return error_response(f"limit must be a whole number >= 1 (at most "
                                      f"{MAX_HISTORY_LIMIT} are returned), got {shown(raw)}", 400)
        limit = min(limit, MAX_HISTORY_LIMIT)
        return json_response({"alerts": self.alerts.history(limit), "limit": limit})

    async def stats(self, request: Request) -> Response:
        return json_response(self.alerts.stats())

    async def silences(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._create_silence(request)
        return json_response({"silences": [s.to_dict() for s in self.alerts.silences.list()]})

    async def _create_silence(self, request: Request) -> Response:
        try:
            body = await read_json(request, timeout=self._body_timeout)
        except BodyError as exc:
            return error_response(f"{exc}; the body must be a JSON object such as {{\"rule\": "
                                  "\"high_error_rate\", \"duration_minutes\": 60, "
                                  "\"comment\": \"deploying\"}", exc.status)
        problem = _silence_problem(body)
        if problem is not None:
            return error_response(problem, 400)
        matchers = dict(body.get("matchers") or {})
        if "rule" in body:
            matchers["alertname"] = body["rule"]
        seconds = _seconds(body)
        assert seconds is not None  # _silence_problem checked it
        who = getattr(request.state, "admin_user", None) or "anonymous"
        # Under several workers the edit takes a file lock another process may hold: in a
        # thread, never on the loop (alerting/silences.py).
        try:
            silence = await self.alerts.silences.create_async(
                matchers, seconds, comment=body.get("comment", ""), created_by=str(who))
        except (SilencesBusy, OSError) as exc:  # held by another process, or a planted file
            return error_response(f"cannot edit the silences now: {exc}", 503)
        return json_response(silence.to_dict(), 201)

    async def delete_silence(self, request: Request) -> Response:
        silence_id = request.path_params["id"]
        try:
            expired = await self.alerts.silences.expire_async(silence_id)
        except (SilencesBusy, OSError) as exc:  # held by another process, or a planted file
            return error_response(f"cannot edit the silences now: {exc}", 503)
        if not expired:
            return error_response(f"no current silence with id {shown(silence_id)}; GET the "
                                  "silences for the list", 404)
        return json_response({"expired": silence_id})


def _silence_problem(body: Any) -> str | None:
    """What is wrong with a silence request, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = sorted(set(body) - _SILENCE_FIELDS)
    if unknown:
        return f"unknown field(s) {unknown}; accepted: {sorted(_SILENCE_FIELDS)}"
    rule, matchers = body.get("rule"), body.get("matchers")
    if rule is None and not matchers:
        return "give \"rule\" (a rule name) and/or \"matchers\" (an object of label: value)"
    if rule is not None and (not isinstance(rule, str) or not rule):
        return "\"rule\" must be a non-empty string (a rule name)"
    if matchers is not None and (not isinstance(matchers, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in matchers.items())):
        return "\"matchers\" must be an object of label name: value strings"
    durations = [k for k in ("duration_minutes", "duration_seconds") if k in body]
    if len(durations) != 1:
        return "give exactly one of \"duration_minutes\" and \"duration_seconds\""
    if _seconds(body) is None:
        duration = shown(body[durations[0]])
        most = (MAX_SILENCE_SECONDS if durations[0] == "duration_seconds"
                else MAX_SILENCE_SECONDS // 60)
        return (f"\"{durations[0]}\" must be a number > 0 and at most {most} (365 days), "
                f"got {duration}")
    if not isinstance(body.get("comment", ""), str):
        return "\"comment\" must be a string"
    return None


def _seconds(body: dict[str, Any]) -> float | None:
    """The silence's duration in seconds, or None if it is not a number in (0, 365 days]."""
    minutes = "duration_seconds" not in body
    duration = body["duration_minutes" if minutes else "duration_seconds"]
    if not isinstance(duration, (int, float)) or isinstance(duration, bool):
        return None
    try:
        seconds = float(duration) * (60 if minutes else 1)
    except OverflowError:  # an int with hundreds of digits
        return None
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_SILENCE_SECONDS:
        return None
    return seconds
