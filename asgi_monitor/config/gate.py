"""Settings of the admin gate: credentials, the metrics token and allow-list, the limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..secret import Secret
from .declare import (
    Check,
    Section,
    any_callable,
    http_url,
    networks,
    number,
    positive_seconds,
    rate,
    secret_text,
    setting,
    text_list,
    token,
    whole,
    whole_at_least,
)

__all__ = ["Authorize", "GateSettings"]

# The admin gate's hook: gets the ASGI scope, returns (or resolves to) True to let the request in.
Authorize = Callable[[MutableMapping[str, Any]], "bool | Awaitable[bool]"]

_user_name = Check("a user name without ':'", lambda v: isinstance(v, str) and ":" not in v)


def _host(entry: object) -> bool:
    # A Host header value: a name or an address, with a port or not, nothing else.
    return (isinstance(entry, str) and "@" not in entry and "/" not in entry
            and "?" not in entry and "#" not in entry and http_url.accepts(f"http://{entry}"))


_hosts = Check("host names such as monitor.example.com or localhost:8000 (comma-separated in "
               "the environment)", lambda v: isinstance(v, tuple) and all(_host(h) for h in v))


class GateSettings(Section):
    """Who may reach what. Admin endpoints are denied until one way in is configured: a bearer
    token, HTTP Basic credentials, or the code-only ``authorize`` hook."""

    name = "gate"

    admin_token: Secret | None = setting(
        None, env="MONITORING_ADMIN_TOKEN", parse=secret_text, is_secret=True, check=token,
        file_env="MONITORING_ADMIN_TOKEN_FILE",
        help="bearer token for admin endpoints (or `MONITORING_ADMIN_TOKEN_FILE`: a file "
             "holding it, read once)")
    admin_username: str = setting(
        "", env="MONITORING_ADMIN_USERNAME", check=_user_name,
        help="HTTP Basic user name (needs the password)")
    admin_password: Secret | None = setting(
        None, env="MONITORING_ADMIN_PASSWORD", parse=secret_text, is_secret=True,
        file_env="MONITORING_ADMIN_PASSWORD_FILE",
        help="HTTP Basic password (or `MONITORING_ADMIN_PASSWORD_FILE`)")
    metrics_token: Secret | None = setting(
        None, env="MONITORING_METRICS_TOKEN", parse=secret_text, is_secret=True, check=token,
        file_env="MONITORING_METRICS_TOKEN_FILE",
        help="bearer token required for `/api/metrics`, granting no admin access (or "
             "`MONITORING_METRICS_TOKEN_FILE`)")
    metrics_allowed_networks: tuple[str, ...] = setting(
        (), env="MONITORING_METRICS_ALLOWED_NETWORKS", parse=text_list, check=networks,
        help="addresses or CIDR networks allowed to read `/api/metrics` (default: all)")
    # 10/s with a burst of 50 leaves room for Prometheus scrapes and a dashboard polling every
    # few seconds.
    rate_limit_per_second: float = setting(
        10.0, env="MONITORING_RATE_LIMIT_PER_SECOND", parse=number, check=rate,
        help="requests per second per client address (`0`: no limit)")
    rate_limit_burst: int = setting(
        50, env="MONITORING_RATE_LIMIT_BURST", parse=whole, check=whole_at_least(1),
        help="requests at once per address")
    rate_limit_max_clients: int = setting(
        10_000, env="MONITORING_RATE_LIMIT_MAX_CLIENTS", parse=whole, check=whole_at_least(1),
        help="addresses the limits track (least recently seen forgotten first)")
    login_max_failures: int = setting(
        5, env="MONITORING_LOGIN_MAX_FAILURES", parse=whole, check=whole_at_least(1),
        help="failed logins before an address and identity are locked out")
    login_lockout_seconds: float = setting(
        300.0, env="MONITORING_LOGIN_LOCKOUT_SECONDS", parse=number, check=positive_seconds,
        help="failure window and lock-out duration")
    allowed_hosts: tuple[str, ...] = setting(
        (), env="MONITORING_ALLOWED_HOSTS", parse=text_list, check=_hosts,
        help="`Host` header values a state-changing admin request (a silence, a check run) may "
             "carry, e.g. `monitor.example.com,localhost:8000` (an entry without a port allows "
             "any port); refused with 403 otherwise. Stops DNS rebinding: a page whose name "
             "re-resolves to this server sends its own name as `Host` (default: any host)")
    body_timeout_seconds: float = setting(
        10.0, env="MONITORING_ADMIN_BODY_TIMEOUT", parse=number, check=positive_seconds,
        help="seconds an admin request's body may take to arrive; a slower one gets 408")
    authorize: Authorize | None = setting(
        None, check=any_callable,
        help="`authorize(scope) -> bool | Awaitable[bool]`, e.g. a session lookup; code only")

    def _check_together(self) -> None:
        if bool(self.admin_username) != bool(self.admin_password):
            missing = "admin_password" if self.admin_username else "admin_username"
            self._fail(missing, "set too: Basic login needs both MONITORING_ADMIN_USERNAME "
                       "and MONITORING_ADMIN_PASSWORD", getattr(self, missing))
        # Prometheus holds the metrics token: the same value would open the admin endpoints.
        if self.metrics_token is not None and self.metrics_token == self.admin_token:
            self._fail("metrics_token", "different from MONITORING_ADMIN_TOKEN (the scraper "
                       "must not hold the admin credential; generate another token)",
                       self.metrics_token)

    @property
    def admin_configured(self) -> bool:
        """Whether any way into the admin endpoints is configured."""
        return bool(self.admin_token or self.admin_password or self.authorize is not None)
