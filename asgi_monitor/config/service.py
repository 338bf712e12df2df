"""Settings naming this service and this instance of it, in every alert it sends."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .declare import Section, setting

__all__ = ["ServiceSettings"]


class ServiceSettings(Section):
    """Who sends the alerts: the `service` and `instance` labels every alert carries.

    Several services (and replicas) often push to one Alertmanager: these labels keep their
    alerts apart, so one's resolution never closes another's.
    """

    name = "service"

    service_name: str = setting(
        "", env=("MONITORING_SERVICE_NAME", "OTEL_SERVICE_NAME"),
        help="the `service` label of every alert (`OTEL_SERVICE_NAME` is read too; "
             "`MONITORING_SERVICE_NAME` wins); default: the `title` of the app the middleware "
             "wraps, else the process name")
    instance: str = setting(
        "", env="MONITORING_INSTANCE",
        help="the `instance` label of every alert; default: the host name (set it, e.g. to "
             "`host:port`, when several replicas of one service share a host)")

    @classmethod
    def env_values(cls, environ: Mapping[str, str], only: str = "") -> dict[str, Any]:
        # OpenTelemetry's standard variable is a fallback, not a rival: our own one wins
        # instead of the "set differently" error two variables of one setting get.
        if environ.get("MONITORING_SERVICE_NAME", "").strip() and "OTEL_SERVICE_NAME" in environ:
            environ = {k: v for k, v in environ.items() if k != "OTEL_SERVICE_NAME"}
        return super().env_values(environ, only)
