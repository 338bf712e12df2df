"""The web layer: the monitoring sub-app. It reads from the core; the core never imports it."""
