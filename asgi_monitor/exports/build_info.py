"""Which build is running: the ``build_info`` series, and ``target_info`` under OpenTelemetry names.

A gauge of 1 whose labels name the service, its version and release, and the Python and package
versions, the convention of Prometheus' own ``prometheus_build_info``: a dashboard shows what
runs where, and a deploy can be lined up with a change in latency (the Grafana dashboard marks
the moments a new version or release appears). Under ``MONITORING_METRIC_NAMES=otel`` (or
``both``) the same identity is also ``target_info``, the series OpenTelemetry's Prometheus
compatibility specification puts the resource attributes on
(https://opentelemetry.io/docs/specs/otel/compatibility/prometheus_and_openmetrics/).

Read in the answering process at each scrape, so it is exposed under several workers too; the
labels are fixed once the service is named (see :class:`~asgi_monitor.alerting.identity.Identity`).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from .._version import __version__

__all__ = ["BuildIdentity", "BuildInfo", "build_info_name"]

# Label names Prometheus accepts: resource attribute keys have dots.
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


class BuildIdentity(Protocol):
    """What the series read: the alert labels, the version and the release."""

    release: str

    def labels(self) -> dict[str, str]: ...

    @property
    def version(self) -> str: ...


def build_info_name(prefix: str) -> str:
    """The sample name of the build info gauge under the metric-name prefix ``prefix``."""
    return f"{prefix}build_info"


def _label(key: str) -> str:
    name = _INVALID.sub("_", key)
    return f"_{name}" if name[:1].isdigit() else name


class BuildInfo(Collector):
    """``<prefix>build_info`` (always) and ``target_info`` (with ``otel`` true)."""

    def __init__(self, identity: BuildIdentity, *, prefix: str = "", otel: bool = False,
                 attributes: Mapping[str, str] | None = None,
                 python_version: Callable[[], str] = platform.python_version) -> None:
        self._identity = identity
        self._prefix = prefix
        self._otel = otel
        self._attributes = dict(attributes or {})
        self._python = python_version()

    def describe(self) -> Iterator[Metric]:
        # Without reading the identity: registering must not fix the service's name before the
        # middleware has seen the app's title.
        yield GaugeMetricFamily(build_info_name(self._prefix), _HELP, labels=_LABELS)
        if self._otel:
            yield InfoMetricFamily("target", _TARGET_HELP)

    def collect(self) -> Iterator[Metric]:
        labels = self._identity.labels()
        version, release = self._identity.version, self._identity.release
        info = GaugeMetricFamily(build_info_name(self._prefix), _HELP, labels=_LABELS)
        info.add_metric((labels["service"], version, release, self._python, __version__), 1.0)
        yield info
        if self._otel:
            resource = {_label(k): v for k, v in self._attributes.items()}
            resource.update(service_name=labels["service"],
                            service_instance_id=labels["instance"])
            if version:
                resource["service_version"] = version
            target = InfoMetricFamily("target", _TARGET_HELP)
            target.add_metric((), resource)
            yield target


_LABELS = ("service", "version", "release", "python_version", "asgi_monitor_version")
_HELP = ("1, labelled with the running service's version and release and the Python and "
         "asgi_monitor versions.")
_TARGET_HELP = "Target metadata: the OpenTelemetry resource attributes of this service."
