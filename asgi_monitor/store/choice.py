"""Where this process records its requests: the one place that chooses one process or several
workers, falls back to one when the worker's file cannot be made, and warns about an earlier
run's files."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from ..config.metrics import MetricsSettings
from .merge import MergedFiles, MergedFilesCollector
from .metric_kinds import PROMETHEUS_KINDS, MetricKinds, file_kinds
from .multiprocess import (
    ENV_VAR,
    MultiprocessRequestMetrics,
    NativeMultiprocessRequestMetrics,
    fall_back,
    multiprocess_dir,
)
from .settings import StoreSettings
from .single import (
    NativeRequestMetrics,
    RequestMetrics,
    RequestMetricsCollector,
    RequestStore,
)

__all__ = ["ChosenStore", "choose_store"]

logger = logging.getLogger("asgi_monitor.metrics")


@dataclass(frozen=True)
class ChosenStore:
    """The request store, and what else follows from the choice."""

    requests: RequestStore
    # asgi_monitor's own prometheus_client metrics: kept in memory, or in the worker's file.
    kinds: MetricKinds = PROMETHEUS_KINDS
    # Under several workers: the worker files' directory and every worker's file merged.
    directory: str | None = None
    merged: MergedFiles | None = None


def choose_store(settings: MetricsSettings, registry: CollectorRegistry,
                 environ: dict[str, str] | None = None) -> ChosenStore:
    """The store for ``PROMETHEUS_MULTIPROC_DIR`` (read from ``environ``, default the process'),
    its request families registered on ``registry``."""
    store_settings = StoreSettings.of(settings)
    directory = multiprocess_dir(environ)
    worker = _worker_store(directory, store_settings) if directory is not None else None
    if worker is None:
        # The native store only when asked: with them off the hot path is unchanged.
        requests = (NativeRequestMetrics if store_settings.native_histograms
                    else RequestMetrics)(store_settings)
        registry.register(RequestMetricsCollector(requests))
        return ChosenStore(requests)
    merged = MergedFiles(worker.file.directory, store_settings)
    leftovers = merged.earlier_run(os.getppid())
    if leftovers:
        logger.warning(
            "%s=%r holds the files of %d worker(s) of an earlier run; their counts are part of "
            "the merged totals. Empty the directory before each server start.",
            ENV_VAR, worker.file.directory, len(leftovers))
    # Dead workers' files folded into one (before serving: nothing waits for it).
    merged.compact()
    # On this registry too (every worker's requests; the custom metrics registered here are
    # this process' own), so the families are declared and read the same.
    registry.register(MergedFilesCollector(merged))
    return ChosenStore(worker, file_kinds(worker), directory, merged)


def _worker_store(directory: str, settings: StoreSettings) -> MultiprocessRequestMetrics | None:
    store = (NativeMultiprocessRequestMetrics if settings.native_histograms
             else MultiprocessRequestMetrics)
    try:
        return store(directory, settings)
    except OSError as exc:
        fall_back(f"{ENV_VAR}={directory!r}: cannot create this worker's metric file ({exc})")
        return None
