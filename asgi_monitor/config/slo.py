"""Settings of the service level objectives: declared in code, or read from a JSON file."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .declare import Check, Section, setting
from .objectives import SLO, load_slo_file

__all__ = ["SLOSettings"]

slo_list = Check("a tuple of SLO objects (asgi_monitor.slo.SLO)",
                 lambda v: isinstance(v, tuple) and all(isinstance(s, SLO) for s in v))


@dataclass(frozen=True)
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

    def __post_init__(self) -> None:
        if isinstance(self.objectives, list):
            object.__setattr__(self, "objectives", tuple(self.objectives))
        super().__post_init__()

    def _check_together(self) -> None:
        names = [s.name for s in self.objectives]
        if len(set(names)) != len(names):
            raise ConfigError(f"slo.objectives: SLO names must be distinct, got {names}")

    def all(self) -> tuple[SLO, ...]:
        """The SLOs given in code, then those of the file (read again on each call)."""
        found = self.objectives + (load_slo_file(self.file) if self.file else ())
        names = [s.name for s in found]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ConfigError(f"MONITORING_SLO_FILE (slo.file) repeats SLO name(s) given in "
                              f"code: {', '.join(repeated)}")
        return found
