"""Exemplars: the trace a request belonged to, attached to its duration bucket.

Read only when ``metrics.exemplars`` is on; the middleware then calls :func:`exemplar_source`'s
result once per recorded request. The trace id comes from, in order: the current OpenTelemetry
span if one is recording (an OpenTelemetry ASGI middleware outside ours made it current), the
W3C ``traceparent`` request header, or the user's ``metrics.exemplar(scope)`` hook.

The hook's answer is checked against the OpenMetrics rules before it is kept
(https://github.com/prometheus/OpenMetrics/blob/main/specification/OpenMetrics.md#exemplars):
label names ``[a-zA-Z_][a-zA-Z0-9_]*``, values UTF-8 text (bytes, natural when read from
``scope["headers"]``, are decoded as UTF-8), names and values 128 characters together. One
invalid exemplar would cost far more than itself: Prometheus with exemplar storage drops the
whole scrape on a bad name, and a bytes value made every OpenMetrics scrape raise until the
bucket's exemplar was replaced. An invalid answer is dropped, and said in a log line at most
once a minute.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .logs import RateLimitedLog

if TYPE_CHECKING:
    from .config.metrics import ExemplarHook

__all__ = ["ExemplarSource", "exemplar_problem", "exemplar_source", "from_traceparent"]

logger = logging.getLogger(__name__)

ExemplarSource = Callable[[Mapping[str, Any]], "dict[str, str] | None"]

# OpenMetrics caps an exemplar's label names and values at 128 UTF-8 characters together;
# prometheus_client raises on more when it writes the scrape, so a longer set is dropped here.
MAX_EXEMPLAR_CHARS = 128
_HEX = "0123456789abcdef"
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def exemplar_problem(found: object) -> tuple[dict[str, str] | None, str | None]:
    """The hook's answer as exemplar labels, and None; or None and why it is refused.

    An empty mapping is no exemplar and no problem. Bytes values are decoded as UTF-8.
    """
    if not isinstance(found, Mapping):
        return None, f"the hook returned {type(found).__name__}, not a dict of labels"
    labels: dict[str, str] = {}
    for name, value in found.items():
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
            return None, (f"label name {str(name)[:40]!r} is not letters, digits and '_' "
                          "(not starting with a digit)")
        if isinstance(value, (bytes, bytearray)):
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                return None, f"the value of {name!r} is bytes that are not UTF-8"
        if not isinstance(value, str):
            return None, f"the value of {name!r} is {type(value).__name__}, not str"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return None, f"the value of {name!r} is not valid UTF-8 text"
        labels[name] = value
    size = sum(len(k) + len(v) for k, v in labels.items())
    if size > MAX_EXEMPLAR_CHARS:
        return None, (f"names and values are {size} characters together, more than "
                      f"OpenMetrics' {MAX_EXEMPLAR_CHARS}")
    return labels or None, None


def from_traceparent(value: str) -> dict[str, str] | None:
    """``{"trace_id", "span_id"}`` from a W3C Trace Context ``traceparent`` value, or None.

    https://www.w3.org/TR/trace-context/#traceparent-header: version-traceid-parentid-flags,
    lowercase hex; version ``ff`` and all-zero ids are invalid; a later version may append
    fields after a ``-``, version 00 may not.
    """
    value = value.strip()
    if len(value) < 55 or (len(value) > 55 and value[55] != "-"):
        return None
    version, trace_id, span_id, flags = value[:2], value[3:35], value[36:52], value[53:55]
    if value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    # strip() removes every hex digit from both ends: anything left is not lowercase hex.
    if (version + trace_id + span_id + flags).strip(_HEX):
        return None
    if version == "ff" or (version == "00" and len(value) != 55):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return {"trace_id": trace_id, "span_id": span_id}


def _header(scope: Mapping[str, Any], name: bytes) -> str | None:
    # ASGI servers lowercase header names.
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _opentelemetry() -> Callable[[], dict[str, str] | None] | None:
    # Imported when exemplars are turned on, and only if installed: the package does not
    # depend on OpenTelemetry.
    try:
        from opentelemetry import trace
    except ImportError:
        return None

    def current() -> dict[str, str] | None:
        span = trace.get_current_span()
        if not span.is_recording():
            return None
        context = span.get_span_context()
        if not context.is_valid:
            return None
        return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}

    return current


def exemplar_source(hook: ExemplarHook | None) -> ExemplarSource:
    """What gives a request's exemplar labels: OpenTelemetry, ``traceparent``, then ``hook``."""
    span_labels = _opentelemetry()
    dropped = RateLimitedLog(logger, logging.WARNING)

    def labels(scope: Mapping[str, Any]) -> dict[str, str] | None:
        found = span_labels() if span_labels is not None else None
        if found is None:
            header = _header(scope, b"traceparent")
            if header is not None:
                found = from_traceparent(header)
        if found is None and hook is not None:
            answer = hook(scope)
            if answer is None:
                return None
            found, problem = exemplar_problem(answer)
            if problem is not None:
                dropped.log("hook", "exemplar dropped: metrics.exemplar's answer is not a "
                            "valid OpenMetrics exemplar (%s); further ones are dropped too, "
                            "logged at most once a minute", problem)
        return found

    return labels
