"""What a scrape reads: the registry itself in one process; under several workers a fresh
registry per scrape, with every worker's file merged and the collectors read in the process
that answers (system resources, health, alerting, sampled gauges)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from .app_files import CheckedMultiProcessCollector
from .merge import MergedFiles, MergedFilesCollector

__all__ = ["ScrapeCollectors"]


class ScrapeCollectors:
    """The collectors that read their values when scraped, and the registry a scrape reads."""

    def __init__(self, registry: CollectorRegistry, merged: MergedFiles | None) -> None:
        self._registry = registry
        # Every worker's file merged, under several workers (None in one process).
        self._merged = merged
        self.collectors: list[Collector] = []

    def add(self, collector: Collector) -> None:
        """Under several workers it is not on the registry but on each scrape's registry."""
        self.collectors.append(collector)
        if self._merged is None:
            self._registry.register(collector)

    def registry(self) -> CollectorRegistry:
        """The registry one scrape reads. Registering reads no file (the merged collector
        describes itself from its names): the files are read once, when it is collected."""
        merged_files = self._merged
        if merged_files is None:
            return self._registry
        merged = CollectorRegistry()
        merged.register(MergedFilesCollector(merged_files, custom=True))
        # The app's own prometheus_client metrics, from prometheus_client's files if it keeps
        # any there.
        merged.register(CheckedMultiProcessCollector(merged_files.directory))
        for collector in self.collectors:
            merged.register(collector)
        return merged
