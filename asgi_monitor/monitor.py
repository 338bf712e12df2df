"""The Monitor: one monitored app's components, and the lifecycle of their background tasks.

:func:`asgi_monitor.build.build_monitor` makes one from a configuration and a registry (the
composition root); the monitor itself builds nothing. The middleware starts it on the ASGI
``lifespan.startup`` event, or lazily on the first request of any kind for servers without
lifespan (docs/health.md has the readiness each lifespan shape ends in); tests
drive it directly with ``async with monitor.running(): ...`` because httpx's ASGITransport sends
no lifespan events.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from .errors import LifecycleError

if TYPE_CHECKING:
    # The parts are made by the composition root (build.py); the monitor only holds them.
    from .alerting.identity import Identity
    from .alerting.leader import LeaderLock
    from .alerting.manager import AlertManager
    from .collector import MetricsCollector
    from .config import MonitoringConfig
    from .health.checker import HealthChecker
    from .insights import Insights
    from .sampling.samples import Sample, SampleBuffer, Sampler
    from .slo.evaluation import SLOTracker
    from .store.single import RequestStore
    from .timeseries import History

__all__ = ["Monitor", "State"]

ServiceFactory = Callable[[], Awaitable[None]]


class State(enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    # The app said its startup failed: stopped, and no request starts it again (the server is
    # exiting, or serves an app that never initialised).
    FAILED = "failed"


class Monitor:
    """The components of one monitored app and their background tasks."""

    def __init__(
        self,
        *,
        config: MonitoringConfig,
        registry: CollectorRegistry,
        collector: MetricsCollector,
        health: HealthChecker,
        sampler: Sampler,
        samples: SampleBuffer,
        history: History,
        alerts: AlertManager,
        alert_lock: LeaderLock,
        insights: Insights,
        identity: Identity,
        scrape_registry: Callable[[], CollectorRegistry],
        web_app: Callable[[Monitor], ASGIApp],
        slos: SLOTracker | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.collector = collector
        self.health = health
        self.sampler = sampler
        self.samples = samples
        self.history = history
        self.alerts = alerts
        self.alert_lock = alert_lock
        self.insights = insights
        self.identity = identity
        # The SLOs' points (None without SLOs): one per sampler sample, read by /api/slos.
        self.slos = slos
        self.scrape_registry = scrape_registry
        self._web_app_factory = web_app
        self._web_app: ASGIApp | None = None
        self.state = State.CREATED
        # True between "startup complete" and "shutdown began"; the readiness probe reads it.
        self.ready = False
        self._shutting_down = False
        self._services: dict[str, ServiceFactory] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.add_service("health", self.health.run_forever)
        self.add_service("sampler", self._sample_forever)
        self.add_service("alerts", self._alert_forever)
        # Each channel's worker: the alert loop only queues, so a hung channel stalls nothing.
        self.add_service("alert_channels", self.alerts.deliver_forever)

    # -- what the middleware needs (see middleware.MonitorHooks) --------------------------------
    @property
    def requests(self) -> RequestStore:
        return self.collector.requests

    def internal_error(self, where: str, exc: BaseException) -> None:
        self.collector.internal_error(where, exc)

    def name_after(self, app: object) -> None:
        """The wrapped app's ``title`` names the service in alerts, unless one is configured."""
        self.identity.name_after(app)

    def asgi_app(self) -> ASGIApp:
        """The monitoring sub-app (the endpoints), built on first use.

        The middleware dispatches its paths to it; it can also be mounted elsewhere or served on
        a port of its own.
        """
        if self._web_app is None:
            self._web_app = self._web_app_factory(self)
        return self._web_app

    # -- background services --------------------------------------------------------------------
    async def _alert_forever(self) -> None:
        interval = self.config.alerts.check_interval_seconds
        try:
            while True:
                try:
                    leader = self.alert_lock.acquire()
                except OSError as exc:  # e.g. the lock directory went away: retry next time
                    self.internal_error("alert_lock", exc)
                    leader = False
                if leader:
                    # A fresh sample, so rules see the metrics as of now, not of the last sample.
                    try:
                        await self.take_sample_async(history=False)
                    except Exception as exc:
                        self.internal_error("sampler", exc)
                    await self.alerts.evaluate()
                else:
                    try:
                        await self.alerts.follow_async()
                    except Exception as exc:  # a broken state file must not stop the loop
                        self.internal_error("alert_state_read", exc)
                await asyncio.sleep(interval)
        finally:
            self.alert_lock.release()

    async def _sample_forever(self) -> None:
        interval = self.config.history.sample_interval_seconds
        while True:
            try:
                await self.take_sample_async()
            except Exception as exc:  # a broken collector must not stop the sampling
                self.internal_error("sampler", exc)
            await asyncio.sleep(interval)

    def take_sample(self, *, history: bool = True) -> None:
        """Read the metrics now; add the sample to :attr:`samples` and, unless ``history`` is
        false, a point to :attr:`history` (so the history keeps the sampler's interval even
        though the alert loop samples more often)."""
        self._keep(self.sampler.take(), history)

    async def take_sample_async(self, *, history: bool = True) -> None:
        """:meth:`take_sample` without blocking the event loop on a merge of the workers' files
        (read in a worker thread; see :meth:`Sampler.take_async`)."""
        self._keep(await self.sampler.take_async(), history)

    def _keep(self, sample: Sample, history: bool) -> None:
        self.samples.add(sample)
        if self.slos is not None:
            # The alert loop's samples (history=False) stand in until the sampler's next one.
            self.slos.observe(sample, provisional=not history)
        if history:
            self.history.record_sample(sample)

    def add_service(self, name: str, factory: ServiceFactory) -> None:
        """Register a long-running coroutine (e.g. a scheduler loop) to run while started."""
        if name in self._services:
            raise LifecycleError(f"a service named {name!r} is already registered")
        self._services[name] = factory
        if self.state is State.RUNNING:
            self._spawn(name, factory)

    def _spawn(self, name: str, factory: ServiceFactory) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(
            self._supervise(name, factory), name=f"asgi_monitor:{name}")

    async def _supervise(self, name: str, factory: ServiceFactory) -> None:
        # A crashing service is logged and counted; it never takes the app or the others down.
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.internal_error(f"service:{name}", exc)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every registered service. Must be called from the app's event loop."""
        if self.state is State.RUNNING:
            raise LifecycleError("monitor already started; call stop() first")
        self._run_services()
        self.ready = True

    def _run_services(self) -> None:
        self.state = State.RUNNING
        self._shutting_down = False
        for name, factory in self._services.items():
            self._spawn(name, factory)

    def start_lazily(self) -> None:
        """Start on the first request (of any kind) when no lifespan startup did: served with
        lifespan off. A no-op once started, stopped or failed, so a request never restarts a
        monitor the lifespan stopped."""
        if self.state is State.CREATED:
            self._run_services()
            self.ready = True

    def lifespan_startup(self) -> None:
        """The server began the app's startup: run the services, but ready only once the app
        says its startup completed."""
        if self.state is not State.RUNNING:
            self._run_services()
            self.ready = False

    def lifespan_startup_complete(self) -> None:
        if self.state is State.RUNNING:
            self.ready = True

    def lifespan_unsupported(self) -> None:
        """The app's lifespan ended (returned or raised) without answering the startup: it does
        not speak lifespan (Django's handler raises on the scope). The ASGI spec lets the server
        serve on without lifespan (uvicorn's default ``--lifespan auto`` does), so this is
        lifespan off: running and ready."""
        if self.state is State.CREATED:
            self.start_lazily()
        elif self.state is State.RUNNING and not self._shutting_down:
            self.ready = True

    async def lifespan_startup_failed(self) -> None:
        """The app sent ``lifespan.startup.failed``: the server exits (uvicorn, Hypercorn); until
        then, and for good if it serves on, not ready."""
        await self.stop()
        self.state = State.FAILED

    def begin_shutdown(self) -> None:
        """Readiness turns false as soon as shutdown begins, before tasks are stopped."""
        self._shutting_down = True
        self.ready = False

    @property
    def not_ready_reason(self) -> str:
        """Why the readiness probe fails, when :attr:`ready` is false (for its body)."""
        if self.state is State.FAILED:
            return "the app's startup failed"
        if self._shutting_down or self.state is State.STOPPED:
            return "shutting down"
        return "starting up"

    async def stop(self) -> None:
        """Cancel every background task and wait for them to finish."""
        self.ready = False
        if self.state is not State.RUNNING:
            return
        self.state = State.STOPPED
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Monitor]:
        """``async with monitor.running():`` starts the services and stops them on exit."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    @property
    def task_names(self) -> list[str]:
        return sorted(self._tasks)
