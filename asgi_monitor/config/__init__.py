"""The one way in for configuration: a frozen :class:`MonitoringConfig` made of small sections.

Each section is a frozen dataclass whose fields are declared with
:func:`~asgi_monitor.config.declare.setting` (default, environment variables, check, help); the
section validates itself from those declarations when it is created, and
:meth:`MonitoringConfig.from_env` maps every documented variable onto its field through them.
A component receives only its own section::

    MonitoringConfig(
        gate=GateSettings(admin_token="..."),
        metrics=MetricsSettings(namespace="shop", excluded_paths=("/healthz",)),
    )
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import field
from typing import Any

from ..errors import ConfigError
from ..secret import Secret
from .alerts import AlertSettings, EmailSettings, WebhookSettings
from .declare import Section, Setting, boolean, declared, setting
from .gate import Authorize, GateSettings
from .health import HealthSettings, SystemSettings
from .history import HistorySettings
from .kubernetes import KubernetesSettings
from .metrics import (
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_SIZE_BUCKETS,
    ExemplarHook,
    MetricsSettings,
    PathSettings,
    RouteResolver,
    metric_prefix,
)
from .otlp import OTLPSettings
from .service import ServiceSettings
from .slo import SLOSettings

__all__ = [
    "DEFAULT_DURATION_BUCKETS", "DEFAULT_SIZE_BUCKETS", "AlertSettings", "Authorize",
    "EmailSettings", "ExemplarHook", "GateSettings", "HealthSettings", "HistorySettings",
    "KubernetesSettings", "MetricsSettings", "MonitoringConfig", "OTLPSettings", "PathSettings",
    "RouteResolver", "SLOSettings", "ServiceSettings", "SystemSettings", "WebhookSettings",
    "metric_prefix", "reference", "variables",
]


class MonitoringConfig(Section):
    """The root: a few process-wide switches, and one section per component.

    ``MonitoringConfig()`` gives the defaults; ``MonitoringConfig.from_env()`` reads the
    documented variables. Sections not given are their defaults.
    """

    enabled: bool = setting(
        True, env="ENABLE_MONITORING", parse=boolean,
        help="`false` makes the middleware a pure pass-through (no metrics, no monitoring paths)")
    debug: bool = setting(
        False, env="MONITORING_DEBUG", parse=boolean,
        help="the `asgi_monitor` loggers at DEBUG (to stderr if no handler would show them)")
    # A library writes no file unless asked to.
    log_file: str = setting(
        "", env="MONITORING_LOG_FILE",
        help="also log `asgi_monitor.*` to this file (rotated at 10 MB, 5 kept); the root "
             "logger is never touched")
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    paths: PathSettings = field(default_factory=PathSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    system: SystemSettings = field(default_factory=SystemSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    email: EmailSettings = field(default_factory=EmailSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    gate: GateSettings = field(default_factory=GateSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    otlp: OTLPSettings = field(default_factory=OTLPSettings)
    slo: SLOSettings = field(default_factory=SLOSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)

    def _check_together(self) -> None:
        for f, section_type in _sections():
            if not isinstance(getattr(self, f.name), section_type):
                raise ConfigError(f"{f.name} must be a {section_type.__name__}, got "
                                  f"{type(getattr(self, f.name)).__name__}")
        # Reading the file here makes a bad SLO file stop the app when it is configured, not
        # when the first alert would have been evaluated.
        slos = self.slo.all()
        for slo in slos:
            slo.check_buckets(self.metrics.duration_buckets)
            slo.check_labels(self.metrics.label_names)
        self.slo.check_in_process(slos, self.alerts.check_interval_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 **overrides: Any) -> MonitoringConfig:
        """Read every documented variable from ``environ`` (default ``os.environ``).

        ``overrides`` win over the environment: a root field's value, a whole section, or a
        mapping of some of a section's fields (``gate={"authorize": is_admin}``), which keeps
        the section's other values from the environment.
        """
        env = os.environ if environ is None else environ
        values = cls.env_values(env)
        for f, section_type in _sections():
            override = overrides.pop(f.name, None)
            if isinstance(override, Section):
                values[f.name] = override
                continue
            fields = section_type.env_values(env)
            if override is not None:
                fields.update(override)
            values[f.name] = section_type(**fields)
        values.update(overrides)
        return cls(**values)

    def public_dict(self) -> dict[str, Any]:
        """The settings as plain data with every secret masked (for logs, exports, the CLI)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = _public(value)
        return out

    @property
    def monitoring_paths(self) -> tuple[str, ...]:
        """The prefixes and the probe paths the middleware answers itself."""
        return self.paths.all() + self.paths.probes()


def _public(value: Any) -> Any:
    if isinstance(value, Section):
        return {f.name: _public(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Secret):
        return str(value) if value else ""
    if callable(value):
        return getattr(value, "__qualname__", type(value).__name__)
    if isinstance(value, tuple):
        # SLO objects become plain data; other items (label pairs, bounds) stay as they were.
        return [_public(v) if dataclasses.is_dataclass(v) else v for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _sections() -> Iterator[tuple[dataclasses.Field[Any], type[Section]]]:
    for f in dataclasses.fields(MonitoringConfig):
        if "setting" not in f.metadata:
            factory = f.default_factory
            assert isinstance(factory, type) and issubclass(factory, Section)
            yield f, factory


def variables() -> dict[str, tuple[str, Setting, Any]]:
    """Every environment variable: its setting's dotted name, declaration and default."""
    found: dict[str, tuple[str, Setting, Any]] = {}
    for section, f, meta in _settings():
        name = f"{section}.{f.name}" if section else f.name
        for variable in [e.name for e in meta.env] + ([meta.file_env] if meta.file_env else []):
            found[variable] = (name, meta, f.default)
    return found


def _settings() -> Iterator[tuple[str, dataclasses.Field[Any], Setting]]:
    yield from (("", f, meta) for f, meta in declared(MonitoringConfig))
    for section_field, section_type in _sections():
        for f, meta in declared(section_type):
            yield section_field.name, f, meta


def reference() -> str:
    """The settings reference as Markdown, printed from the declarations: one table per section.

    ``docs/configuration.md`` holds this text (a test keeps them equal) and
    ``asgi-monitor config --reference`` prints it.
    """
    out: list[str] = []
    groups: list[tuple[str, type[Section]]] = [("", MonitoringConfig)]
    groups += [(f.name, section_type) for f, section_type in _sections()]
    for section, section_type in groups:
        title = f"`{section}`: `{section_type.__name__}`" if section else "`MonitoringConfig`"
        doc = (section_type.__doc__ or "").strip().split("\n\n")[0]
        out += [f"### {title}", "", " ".join(doc.split()), "",
                "| variable | setting | default | meaning |", "|---|---|---|---|"]
        for f, meta in declared(section_type):
            name = f"{section}.{f.name}" if section else f.name
            variables = [e.name for e in meta.env] + ([meta.file_env] if meta.file_env else [])
            shown_vars = ", ".join(f"`{v}`" for v in variables) or "(code only)"
            meaning = meta.help.replace("|", "\\|")
            out.append(f"| {shown_vars} | `{name}` | {_shown_default(f.default)} | {meaning} |")
        out.append("")
    return "\n".join(out)


def _shown_default(default: Any) -> str:
    if default in ("", None, ()):
        return "(none)"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple) and all(isinstance(d, tuple) for d in default):
        return f"`{','.join(f'{name}={value}' for name, value in default)}`"  # label pairs
    if isinstance(default, tuple):
        return f"`{','.join(_number(d) for d in default)}`"
    if isinstance(default, float):
        return f"`{_number(default)}`"
    return f"`{default}`"


def _number(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
