"""Settings of the service level objectives: declared in code, or read from a JSON file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from .declare import Check, Section, boolean, number, positive_seconds, setting

if TYPE_CHECKING:
    from .objectives import SLO

__all__ = ["SLOSettings"]


def _slos(value: object) -> bool:
    if not isinstance(value, tuple):
        return False
    if not value:
        return True
    # The SLO model (its classes, its tables) loads only when there are SLOs to check.
    from .objectives import SLO

    return all(isinstance(s, SLO) for s in value)


slo_list = Check("a tuple of SLO objects (asgi_monitor.slo.SLO)", _slos)


class SLOSettings(Section):
    """Service level objectives: the SLIs, objectives and periods the burn-rate alerts watch.

    The file's SLOs are added to those given in code; names must be distinct.
    """

    name = "slo"

    file: str = setting(
        "", env="MONITORING_SLO_FILE",
        help="a JSON file of SLOs (`{\"slos\": [{\"name\": ..., \"sli\": {\"kind\": "
             "\"availability\"}, \"objective_percent\": 99.9, \"period_days\": 30}]}`), read "
             "when the configuration is built; see docs/slo.md")
    objectives: tuple[SLO, ...] = setting(
        (), check=slo_list, help="`SLO(...)` objects; code only")
    in_process: bool = setting(
        True, env="MONITORING_SLO_IN_PROCESS", parse=boolean,
        help="evaluate the burn-rate alerts in this process too, over its own samples, and send "
             "them through the alert channels (`false` when Prometheus alerts on the exported "
             "rules)")
    retention_seconds: float = setting(
        259200.0, env="MONITORING_SLO_RETENTION", parse=number, check=positive_seconds,
        help="seconds of SLO points kept in memory for in-process evaluation: an alert whose "
             "long window (1h, 6h, 1d, 3d) is longer is not evaluated; at least 3600")

    def __post_init__(self) -> None:
        if isinstance(self.objectives, list):
            object.__setattr__(self, "objectives", tuple(self.objectives))
        super().__post_init__()

    def _check_together(self) -> None:
        names = [s.name for s in self.objectives]
        if len(set(names)) != len(names):
            raise ConfigError(f"slo.objectives: SLO names must be distinct, got {names}")

    def check_in_process(self, slos: tuple[SLO, ...], sample_seconds: float) -> None:
        """Refuse what in-process evaluation cannot honour (when it is on and SLOs exist)."""
        if not self.in_process or not slos:
            return
        off = "or set MONITORING_SLO_IN_PROCESS=false and alert with the exported rules"
        if self.retention_seconds < 3600:
            raise ConfigError(
                f"MONITORING_SLO_RETENTION (slo.retention_seconds) must be at least 3600 (the "
                f"1h window of the fastest burn-rate alert), got {self.retention_seconds:g}, "
                f"{off}")
        if sample_seconds > 150:
            raise ConfigError(
                f"ALERT_CHECK_INTERVAL (alerts.check_interval_seconds) must be at most 150 "
                f"seconds for in-process SLO alerts (two samples in their 5m window), got "
                f"{sample_seconds:g}, {off}")
        for slo in slos:
            if slo.sli.kind == "availability" and slo.sli.bad_status != "5..":
                raise ConfigError(
                    f"{slo.where('sli.bad_status')} {slo.sli.bad_status!r} cannot be "
                    f"evaluated in process (its samples count 5xx only): use '5..' {off}")

    def all(self) -> tuple[SLO, ...]:
        """The SLOs given in code, then those of the file (read again on each call: the
        monitor reads it once, when it is built, and keeps what it read)."""
        if not self.file:
            found = self.objectives
        else:
            from .objectives import load_slo_file

            found = self.objectives + load_slo_file(self.file)
        from .objectives import MAX_SLOS

        if len(found) > MAX_SLOS:
            raise ConfigError(f"slo.objectives and MONITORING_SLO_FILE (slo.file) must hold at "
                              f"most {MAX_SLOS} SLOs together, got {len(found)}")
        names = [s.name for s in found]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"MONITORING_SLO_FILE (slo.file) repeats SLO name(s) given in "
                              f"code: {', '.join(repeated)}")
        return found
