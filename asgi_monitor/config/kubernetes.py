"""Settings of the Kubernetes manifests `asgi-monitor kubernetes` prints (read nowhere else)."""

from __future__ import annotations

import re

from .declare import (
    Check,
    Section,
    label_pairs,
    number,
    one_of,
    port,
    positive_seconds,
    setting,
    whole,
)

__all__ = ["KubernetesSettings", "as_object_name"]

# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
# Pattern texts, compiled (and cached by `re`) on first use: config modules compile nothing at
# import. Matched whole with fullmatch, so a trailing newline is no match.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_NAME = r"([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
# IANA service names, what a container port's name must be: at most 15, at least one letter.
_PORT_NAME = r"(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SECRET_KEY = r"[-._a-zA-Z0-9]+"


def _whole(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def as_object_name(text: str) -> str:
    """``text`` as a Kubernetes object name: lower case, `-` for anything else, at most 63."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].rstrip("-")
    return slug


def _labels(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], str)
        and len(p[0].rpartition("/")[2]) <= 63 and _whole(_LABEL_NAME, p[0])
        and len(p[1]) <= 63 and _whole(_LABEL_VALUE, p[1]) for p in value)


labels = Check("name=value pairs that are Kubernetes labels (`app.kubernetes.io/name=shop`)",
               _labels)
object_name_check = Check(
    "a Kubernetes name: lower-case letters, digits and '-', at most 63 (or empty)",
    lambda v: isinstance(v, str) and (v == "" or (len(v) <= 63 and _whole(_DNS_LABEL, v))))
port_name = Check("a port name: lower-case letters, digits and '-', at most 15, one letter",
                  lambda v: isinstance(v, str) and len(v) <= 15 and _whole(_PORT_NAME, v))


class KubernetesSettings(Section):
    """What the printed ServiceMonitor, PodMonitor, PrometheusRule, ConfigMap and probes say
    about the Deployment they go with; the metrics path, token and probe paths come from their
    own sections."""

    name = "kubernetes"

    object_name: str = setting(
        "", env="MONITORING_K8S_NAME", check=object_name_check,
        help="the objects' name and `app.kubernetes.io/name`; default: the service name "
             "(`MONITORING_SERVICE_NAME`) made a Kubernetes name, else `asgi-app`")
    namespace: str = setting(
        "", env="MONITORING_K8S_NAMESPACE", check=object_name_check,
        help="the objects' namespace; empty: none written (`kubectl apply -n` decides)")
    selector: tuple[tuple[str, str], ...] = setting(
        (), env="MONITORING_K8S_SELECTOR", parse=label_pairs, check=labels,
        help="labels that select the app's Service (or pods, with `--pod`); default: "
             "`app.kubernetes.io/name=<name>`")
    labels: tuple[tuple[str, str], ...] = setting(
        (("release", "kube-prometheus-stack"),), env="MONITORING_K8S_LABELS", parse=label_pairs,
        check=labels,
        help="labels of the monitor and rule objects, which the Prometheus' "
             "`serviceMonitorSelector`/`ruleSelector` must match (kube-prometheus-stack's "
             "default selects `release=<its Helm release>`)")
    port_name: str = setting(
        "http", env="MONITORING_K8S_PORT_NAME", check=port_name,
        help="the named port (of the Service, or the container with `--pod`) Prometheus "
             "scrapes and the probes call")
    container_port: int = setting(
        8000, env="MONITORING_K8S_CONTAINER_PORT", parse=whole, check=port,
        help="the container port the app listens on, in the probe stanzas' `ports`")
    scheme: str = setting(
        "http", env="MONITORING_K8S_SCHEME", check=one_of("http", "https"),
        help="`http` or `https`: how Prometheus scrapes and the kubelet probes")
    scrape_interval_seconds: float = setting(
        30.0, env="MONITORING_K8S_SCRAPE_INTERVAL", parse=number, check=positive_seconds,
        help="seconds between scrapes")
    token_secret: str = setting(
        "", env="MONITORING_K8S_TOKEN_SECRET", check=object_name_check,
        help="the Secret holding the metrics token (`MONITORING_METRICS_TOKEN`), which "
             "Prometheus sends as a bearer token; default `<name>-metrics-token` when a metrics "
             "token is configured, else no token is sent")
    token_secret_key: str = setting(
        "token", env="MONITORING_K8S_TOKEN_SECRET_KEY",
        check=Check("a Secret key (letters, digits, '-', '_', '.')",
                    lambda v: isinstance(v, str) and _whole(_SECRET_KEY, v)),
        help="the key of the token in that Secret")
