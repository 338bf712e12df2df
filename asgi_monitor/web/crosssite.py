"""Refusing state-changing requests a browser could be tricked into sending from another site.

A page on another site, or on a sibling origin of the same site, can make an admin's browser
send requests carrying the admin's Basic credentials or cookies. The gate asks
:func:`cross_site_refusal` first for every request, so every endpoint that changes state (any
method but GET, HEAD and OPTIONS) is covered without doing anything itself.
"""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["cross_site_refusal", "host_refusal"]

# Safe methods change nothing here, and a foreign page cannot read their answers (no CORS
# header is ever sent); every other method changes state, so every other method is checked.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _origin(scheme: str, host: str) -> str:
    """``scheme://host[:port]`` lower-cased, without the scheme's default port."""
    scheme, host = scheme.lower(), host.lower()
    port = _DEFAULT_PORTS.get(scheme)
    if port and host.endswith(f":{port}"):
        host = host[: -len(port) - 1]
    return f"{scheme}://{host}"


def cross_site_refusal(request: Request) -> str | None:
    """Why a state-changing request is refused as one a browser could be tricked into sending
    from another site, or ``None``.

    A cross-site ``<form>`` can POST ``text/plain`` (whose text may parse as JSON),
    ``application/x-www-form-urlencoded`` or ``multipart/form-data``, with the admin's Basic
    credentials or cookies; only a JSON ``Content-Type`` needs a CORS preflight, which the
    sub-app never grants. ``Sec-Fetch-Site`` and ``Origin`` are set by the browser (a page
    cannot forge them), so when present they must say same-origin. Clients that send neither
    (curl, scripts) are let through: they are not acting for someone else's browser.
    """
    if request.method in _SAFE_METHODS:
        return None
    headers = request.headers
    content_type = headers.get("content-type")
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if (content_type is not None or has_body) and (
            (content_type or "").partition(";")[0].strip().lower() != "application/json"):
        return ("a request that changes state must send its body as Content-Type: "
                "application/json (a browser cannot send that cross-site without asking)")
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site.lower() != "same-origin":
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:20]!r})"
    origin = headers.get("origin")
    if origin is not None:
        own = _origin(str(request.scope.get("scheme", "http")), headers.get("host", ""))
        scheme, sep, host = origin.partition("://")
        if not sep or _origin(scheme, host) != own:
            return (f"cross-origin request refused (Origin {origin[:100]!r} is not {own!r}; "
                    "behind a proxy, let the server set the scheme and host: uvicorn "
                    "--proxy-headers)")
    return None


def _host_and_port(value: str) -> tuple[str, str]:
    """``("name", "port")`` of a Host value, lower-cased, without a fully qualified name's
    final dot; ``[v6]`` addresses keep their brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else ""
    name, _, port = value.partition(":")
    return name.rstrip("."), port


def host_refusal(request: Request, allowed: tuple[str, ...]) -> str | None:
    """Why a state-changing request is refused for its ``Host`` header, or ``None``.

    DNS rebinding: a page on ``evil.example`` re-resolves its own name to this server's address
    and sends requests the browser takes as same-origin, so ``Origin`` and ``Host`` agree
    (both ``evil.example``) and the cross-site check passes. No credential of the admin's goes
    with them, but an ``authorize`` hook that trusts the client address (a request from the
    office network is an admin) would let them in. The ``Host`` is the one thing such a page
    cannot make ours: with ``MONITORING_ALLOWED_HOSTS`` set, a state-changing request must name
    one of them. An entry without a port allows any port.
    """
    if not allowed or request.method in _SAFE_METHODS:
        return None
    header = request.headers.get("host", "")
    name, port = _host_and_port(header)
    for entry in allowed:
        allowed_name, allowed_port = _host_and_port(entry)
        if name == allowed_name and (not allowed_port or port == allowed_port):
            return None
    return (f"the Host header {header[:100]!r} is not one of MONITORING_ALLOWED_HOSTS; a "
            "request that changes state must name this server as configured")
