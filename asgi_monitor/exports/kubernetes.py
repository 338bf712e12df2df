"""Kubernetes manifests for a cluster run with the Prometheus Operator (kube-prometheus-stack).

From the same configuration the middleware reads, so the manifests say what the app serves:

- a ``ServiceMonitor`` (or a ``PodMonitor``) scraping the metrics path on the named port, with
  the scheme and, when a metrics token is configured, the Secret holding it as a bearer token;
- a ``PrometheusRule`` holding the rules of ``asgi-monitor rules`` (the default alerts and the
  SLO groups);
- the Grafana dashboard in a ``ConfigMap`` labelled ``grafana_dashboard: "1"``, which the
  Grafana sidecar of kube-prometheus-stack loads;
- the probe stanzas of the app's container (``/startupz``, ``/livez``, ``/readyz``).

Every object is plain data here; :func:`render` writes YAML. The tests validate each against
the Operator's CRD schemas and Kubernetes' own OpenAPI definitions, and run the rules through
``promtool``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..config.kubernetes import as_object_name
from .grafana import grafana_dashboard
from .prometheus_rules import prometheus_rules, render_yaml

if TYPE_CHECKING:
    from ..config import MonitoringConfig

__all__ = ["DASHBOARD_LABEL", "configmap_dashboard", "manifests", "monitor", "object_name",
           "probes", "prometheus_rule", "render"]

API_VERSION = "monitoring.coreos.com/v1"
# The label kube-prometheus-stack's Grafana sidecar looks for (its `sidecar.dashboards.label`
# and `labelValue` defaults).
DASHBOARD_LABEL = ("grafana_dashboard", "1")


def object_name(config: MonitoringConfig) -> str:
    """The objects' name: the configured one, else the service's name made a Kubernetes name."""
    return (config.kubernetes.object_name or as_object_name(config.service.service_name)
            or "asgi-app")


def _metadata(config: MonitoringConfig, suffix: str, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"{object_name(config)}{suffix}"[:63]}
    if config.kubernetes.namespace:
        metadata["namespace"] = config.kubernetes.namespace
    metadata["labels"] = {"app.kubernetes.io/name": object_name(config), **labels}
    return metadata


def _selector(config: MonitoringConfig) -> dict[str, str]:
    return dict(config.kubernetes.selector) or {"app.kubernetes.io/name": object_name(config)}


def _seconds(value: float) -> str:
    # Prometheus durations: whole seconds, never 0s.
    return f"{max(int(value), 1)}s"


def monitor(config: MonitoringConfig, *, pod: bool = False) -> dict[str, Any]:
    """A ServiceMonitor for the app's Service (a PodMonitor for its pods with ``pod``)."""
    settings = config.kubernetes
    endpoint: dict[str, Any] = {
        "port": settings.port_name,
        "path": config.paths.metrics,
        "scheme": settings.scheme,
        "interval": _seconds(settings.scrape_interval_seconds),
    }
    secret = settings.token_secret or (
        f"{object_name(config)}-metrics-token"[:63] if config.gate.metrics_token else "")
    if secret:
        # `authorization` is the Operator's current field (`bearerTokenSecret` is deprecated);
        # the token itself never appears here, only where Prometheus finds it.
        endpoint["authorization"] = {
            "type": "Bearer",
            "credentials": {"name": secret, "key": settings.token_secret_key}}
    kind, endpoints = ("PodMonitor", "podMetricsEndpoints") if pod else (
        "ServiceMonitor", "endpoints")
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": _metadata(config, "", dict(settings.labels)),
        "spec": {"selector": {"matchLabels": _selector(config)}, endpoints: [endpoint]},
    }


def prometheus_rule(config: MonitoringConfig) -> dict[str, Any]:
    """The rules of ``asgi-monitor rules`` (the default alerts and SLO groups) as a
    PrometheusRule."""
    return {
        "apiVersion": API_VERSION,
        "kind": "PrometheusRule",
        "metadata": _metadata(config, "-rules", dict(config.kubernetes.labels)),
        "spec": prometheus_rules(config),
    }


def configmap_dashboard(config: MonitoringConfig) -> dict[str, Any]:
    """The Grafana dashboard in a ConfigMap for the Grafana sidecar."""
    dashboard = grafana_dashboard(config.metrics.namespace,
                                  metric_names=config.metrics.metric_names,
                                  slos=config.slo.all(),
                                  request_labels=config.metrics.label_names)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(config, "-dashboard", dict([DASHBOARD_LABEL])),
        "data": {f"{object_name(config)}.json": json.dumps(dashboard, indent=2,
                                                           sort_keys=True)},
    }


def probes(config: MonitoringConfig) -> dict[str, Any]:
    """The probe stanzas (and the named port they call) of the app's container.

    The numbers follow the Kubernetes guidance: startup allows five minutes before liveness
    takes over, so a slow start needs no ``initialDelaySeconds``; liveness fails only after
    three misses in a row (a restart is the costliest answer); readiness reacts within about
    ten seconds, to take the pod out of the Service's endpoints early.
    """
    settings, paths = config.kubernetes, config.paths

    def http_get(path: str) -> dict[str, Any]:
        return {"path": path, "port": settings.port_name, "scheme": settings.scheme.upper()}

    stanzas: dict[str, Any] = {
        "ports": [{"name": settings.port_name, "containerPort": settings.container_port,
                   "protocol": "TCP"}],
    }
    if paths.startupz:
        stanzas["startupProbe"] = {"httpGet": http_get(paths.startupz), "periodSeconds": 5,
                                   "timeoutSeconds": 3, "failureThreshold": 60}
    stanzas["livenessProbe"] = {"httpGet": http_get(paths.livez or f"{paths.health}/live"),
                                "periodSeconds": 10, "timeoutSeconds": 5,
                                "failureThreshold": 3}
    stanzas["readinessProbe"] = {"httpGet": http_get(paths.readyz or f"{paths.health}/ready"),
                                 "periodSeconds": 5, "timeoutSeconds": 3,
                                 "failureThreshold": 2}
    return stanzas


def manifests(config: MonitoringConfig, *, pod: bool = False) -> list[dict[str, Any]]:
    """The objects to apply: the monitor, the rules and the dashboard."""
    return [monitor(config, pod=pod), prometheus_rule(config), configmap_dashboard(config)]


def render(documents: list[dict[str, Any]], header: str = "") -> str:
    """YAML documents, separated by ``---``, after the comment lines of ``header``."""
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    return comment + "".join(f"---\n{render_yaml(document)}\n" for document in documents)
