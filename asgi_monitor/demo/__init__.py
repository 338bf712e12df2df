"""The demo: an example Starlette app wrapped in MonitoringMiddleware (``make demo``)."""
