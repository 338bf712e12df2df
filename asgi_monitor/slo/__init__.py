"""Service level objectives: what an SLO is and how one is read from a file (declared beside
the configuration, in :mod:`asgi_monitor.config.objectives`, which the settings validate).

The Prometheus rules for them are in :mod:`.promql` (imported by the ``rules`` export only).
"""

from __future__ import annotations

from ..config.objectives import (
    BURN_ALERTS,
    SLI,
    SLO,
    WINDOWS,
    BurnAlert,
    Selector,
    load_slo_file,
    slos_from_data,
)

__all__ = ["BURN_ALERTS", "SLI", "SLO", "WINDOWS", "BurnAlert", "Selector", "load_slo_file",
           "slos_from_data"]
