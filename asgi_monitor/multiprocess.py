"""gunicorn hooks for several workers: ``from asgi_monitor.multiprocess import child_exit`` in
gunicorn.conf.py. The store itself is :mod:`asgi_monitor.store`."""

from .store.multiprocess import child_exit

__all__ = ["child_exit"]
