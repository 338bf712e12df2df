# The gunicorn configuration docs/multiprocess.md gives, as integration/test_worker_servers.py
# runs it: a dead worker's live gauges (requests in progress, open WebSockets) stop counting.
from asgi_monitor.multiprocess import child_exit  # noqa: F401  (gunicorn calls it by name)
