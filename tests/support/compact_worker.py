"""A process for ``unit/metrics/test_compaction.py``: compacts ``PROMETHEUS_MULTIPROC_DIR`` with
the default settings and kills itself with SIGKILL at the step its argument names ("written",
"renamed", "removing", "removed"), as a crash there would. Prints how many files it folded when
it gets to the end."""

from __future__ import annotations

import os
import signal
import sys

from asgi_monitor.config import MetricsSettings
from asgi_monitor.store.merge import MergedFiles
from asgi_monitor.store.settings import StoreSettings


def main() -> None:
    step = sys.argv[1] if len(sys.argv) > 1 else ""
    settings = MetricsSettings()
    merged = MergedFiles(os.environ["PROMETHEUS_MULTIPROC_DIR"], StoreSettings(
        duration_buckets=settings.duration_buckets, size_buckets=settings.size_buckets,
        max_series=settings.max_series))

    def hook(at: str) -> None:
        if at == step:
            os.kill(os.getpid(), signal.SIGKILL)

    print(merged.compactor.compact(hook), flush=True)


if __name__ == "__main__":
    main()
