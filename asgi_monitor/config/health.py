"""Settings of the health checker and of the system resources both health and alerts watch."""

from __future__ import annotations

from .declare import (
    Env,
    Section,
    boolean,
    milliseconds,
    non_empty_paths,
    number,
    percent,
    positive_seconds,
    setting,
    text_list,
)

__all__ = ["HealthSettings", "SystemSettings"]


class HealthSettings(Section):
    """The health checker's schedule and the built-in checks it registers."""

    name = "health"

    interval_seconds: float = setting(
        60.0, env="HEALTH_CHECK_INTERVAL", parse=number, check=positive_seconds,
        help="seconds between runs of a check (its default `interval_seconds`)")
    timeout_seconds: float = setting(
        10.0, env="HEALTH_CHECK_TIMEOUT", parse=number, check=positive_seconds,
        help="seconds a run may take (or the interval, if shorter); then CRITICAL")
    default_checks: bool = setting(
        True, env="HEALTH_DEFAULT_CHECKS", parse=boolean,
        help="register the built-in memory, disk, CPU, responsiveness and `alert_channels` "
             "checks")
    disk_path: str = setting("/", env="HEALTH_DISK_PATH", help="the path the `disk` check watches")
    loop_lag_warning_seconds: float = setting(
        0.1, env=Env("HEALTH_LOOP_LAG_WARNING_MS", milliseconds), check=positive_seconds,
        help="`responsiveness` check: WARNING at this event-loop lag (the variable is in ms)")
    loop_lag_critical_seconds: float = setting(
        0.5, env=Env("HEALTH_LOOP_LAG_CRITICAL_MS", milliseconds), check=positive_seconds,
        help="`responsiveness` check: CRITICAL (the variable is in ms)")

    def _check_together(self) -> None:
        if self.loop_lag_warning_seconds >= self.loop_lag_critical_seconds:
            self._fail("loop_lag_warning_seconds", "below HEALTH_LOOP_LAG_CRITICAL_MS",
                       self.loop_lag_warning_seconds)


class SystemSettings(Section):
    """System resources: whether they are exported, and the thresholds that make them a problem.

    One threshold per concept: the ``memory`` and ``disk`` health checks turn WARNING, and the
    ``high_memory_usage`` and ``low_disk_space`` alert rules fire, at the same warning levels.
    """

    name = "system"

    metrics: bool = setting(
        True, env="MONITORING_SYSTEM_METRICS", parse=boolean,
        help="expose `app_process_*` and `system_*` metrics (psutil, read at scrape time)")
    disk_paths: tuple[str, ...] = setting(
        ("/",), env="MONITORING_DISK_PATHS", parse=text_list, check=non_empty_paths,
        help="comma-separated paths whose file system's use is reported")
    memory_warning_percent: float = setting(
        85.0, env=("HEALTH_MEMORY_WARNING_PERCENT", "ALERT_MEMORY_PERCENT"), parse=number,
        check=percent,
        help="`memory` check WARNING and `high_memory_usage` alert at this % of memory used")
    memory_critical_percent: float = setting(
        95.0, env="HEALTH_MEMORY_CRITICAL_PERCENT", parse=number, check=percent,
        help="`memory` check: CRITICAL")
    cpu_warning_percent: float = setting(
        90.0, env="HEALTH_CPU_WARNING_PERCENT", parse=number, check=percent,
        help="`cpu` check: WARNING at this % busy")
    cpu_critical_percent: float = setting(
        98.0, env="HEALTH_CPU_CRITICAL_PERCENT", parse=number, check=percent,
        help="`cpu` check: CRITICAL")
    disk_warning_free_percent: float = setting(
        15.0, env=("HEALTH_DISK_WARNING_FREE_PERCENT", "ALERT_DISK_FREE_PERCENT"), parse=number,
        check=percent,
        help="`disk` check WARNING and `low_disk_space` alert below this % free")
    disk_critical_free_percent: float = setting(
        5.0, env="HEALTH_DISK_CRITICAL_FREE_PERCENT", parse=number, check=percent,
        help="`disk` check: CRITICAL")

    def _check_together(self) -> None:
        for resource in ("memory", "cpu"):
            warning = getattr(self, f"{resource}_warning_percent")
            critical = getattr(self, f"{resource}_critical_percent")
            if not warning < critical:
                self._fail(f"{resource}_warning_percent",
                           f"below the critical threshold ({critical!r})", warning)
        if not self.disk_warning_free_percent > self.disk_critical_free_percent:
            self._fail("disk_warning_free_percent",
                       f"above the critical threshold ({self.disk_critical_free_percent!r})",
                       self.disk_warning_free_percent)
