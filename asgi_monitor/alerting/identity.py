"""Who sends an alert: the ``service`` and ``instance`` labels every alert carries.

Several services (and replicas of one) often push to one Alertmanager, which identifies an alert
by its labels: without these two, two services' ``high_error_rate`` would be one alert, and one
service's resolution would close the other's.
"""

from __future__ import annotations

import os
import socket
import sys

from ..config.declare import label_text
from ..config.service import ServiceSettings

__all__ = ["Identity", "process_name"]


def process_name() -> str:
    """The program's name (``uvicorn``, ``gunicorn``, ``app``), the last resort for a service."""
    path = sys.argv[0] if sys.argv and sys.argv[0] else ""
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem == "__main__":  # python -m uvicorn: the package, not its __main__.py
        stem = os.path.basename(os.path.dirname(path))
    return stem or "asgi_app"


class Identity:
    """The ``service`` and ``instance`` labels, resolved once and then fixed.

    The service is ``service_name`` when configured, else the ``title`` of the app the middleware
    wraps (FastAPI, Litestar, a Starlette app given one), else the process name. The monitor is
    built before the middleware sees the app, so the title is taken through :meth:`name_after`;
    the labels are fixed on first use (the first alert), so every alert of the process carries
    the same ones and its resolution matches its firing.

    The instance is ``instance`` when configured, else the host name. Not host:port: the port is
    only known from a request's scope, and an alert may fire before any request arrives; nor
    the pid, which changes on a restart and with the worker holding the alert lock, while the
    alert restored or taken over must resolve under the labels it fired with.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self._service = settings.service_name
        self._instance = settings.instance
        self._title = ""
        self._labels: dict[str, str] | None = None
        self._version = settings.version
        self._app_version = ""
        self.release = settings.release

    def name_after(self, app: object) -> None:
        """Use ``app.title`` as the service name, unless one is configured or already used,
        and ``app.version`` (FastAPI's) as the version unless one is configured."""
        title = getattr(app, "title", None)
        # A title is the app's, not a setting: one that would break a label or a mail Subject
        # (a newline, 10 KB of text) is passed over for the process name instead of refused.
        if self._labels is None and not self._title and isinstance(title, str) \
                and label_text.accepts(title.strip()):
            self._title = title.strip()
        version = getattr(app, "version", None)
        if not self._app_version and isinstance(version, str):
            self._app_version = version.strip()

    @property
    def version(self) -> str:
        """The configured version, else the app's own, else empty."""
        return self._version or self._app_version

    def labels(self) -> dict[str, str]:
        if self._labels is None:
            self._labels = {"service": self._service or self._title or process_name(),
                            "instance": self._instance or socket.gethostname()}
        return dict(self._labels)
