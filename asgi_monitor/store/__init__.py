"""Where request series and custom metrics live: in this process, or in per-worker files.

``single`` is the in-process store the middleware records into; ``multiprocess`` keeps the same
interface on a memory-mapped file per worker (``worker_file``) when ``PROMETHEUS_MULTIPROC_DIR``
is set, and ``merge`` folds every worker's file at scrape. Both hand their series to one
projection (``families``), so the two modes expose the same names; ``exposition`` writes that
projection's text straight from their numbers for a scrape. ``metric_kinds`` gives the
custom metrics the same choice. ``compaction`` folds dead workers' files into one
``retired_file``; every file of the directory is read through ``safe_open``, as untrusted input
(``app_files`` does the same for the app's own prometheus_client files).
"""
