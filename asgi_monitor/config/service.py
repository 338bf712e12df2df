"""Settings naming this service, its version and this instance of it: in every alert it sends,
the ``build_info`` series, the health+json answer and the OTLP resource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .declare import Section, label_text, setting
from .otlp import key_value_pairs

__all__ = ["ServiceSettings"]


class ServiceSettings(Section):
    """Who sends the alerts: the `service` and `instance` labels every alert carries, and the
    version and release the `build_info` series and health+json answers name.

    Several services (and replicas) often push to one Alertmanager: these labels keep their
    alerts apart, so one's resolution never closes another's.
    """

    name = "service"
    fallbacks = True

    service_name: str = setting(
        "", env=("MONITORING_SERVICE_NAME", "OTEL_SERVICE_NAME"), check=label_text,
        help="the `service` label of every alert (else `OTEL_SERVICE_NAME`, else "
             "`OTEL_RESOURCE_ATTRIBUTES`' `service.name`); default: the `title` of the app "
             "the middleware wraps, else the process name")
    instance: str = setting(
        "", env="MONITORING_INSTANCE", check=label_text,
        help="the `instance` label of every alert; default: the host name (set it, e.g. to "
             "`host:port`, when several replicas of one service share a host)")
    version: str = setting(
        "", env="MONITORING_SERVICE_VERSION", check=label_text,
        help="the running version (`build_info`'s `version`, health+json's `version`); else "
             "`OTEL_RESOURCE_ATTRIBUTES`' `service.version`, else the wrapped app's own "
             "`version` (FastAPI's), else empty")
    release: str = setting(
        "", env="MONITORING_RELEASE", check=label_text,
        help="the release or commit deployed (`build_info`'s `release`, health+json's "
             "`releaseId`), e.g. a git SHA set by the CI")

    @classmethod
    def env_values(cls, environ: Mapping[str, str], only: str = "") -> dict[str, Any]:
        values = super().env_values(environ, only)
        # OTEL_RESOURCE_ATTRIBUTES is the SDK's last word on the resource: its service.name and
        # service.version name the service when nothing more specific does. The variable is
        # the otlp section's (resource_attributes), which reports it when malformed.
        try:
            attributes = dict(key_value_pairs(environ.get("OTEL_RESOURCE_ATTRIBUTES", "")))
        except ValueError:
            return values
        for field_name, key in (("service_name", "service.name"), ("version", "service.version")):
            if (not only or only == field_name) and not values.get(field_name) \
                    and attributes.get(key):
                values[field_name] = attributes[key]
        return values
