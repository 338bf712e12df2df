"""The monitoring endpoints under a real ``uvicorn --root-path /prefix``, as behind a proxy that
strips the prefix: each answers, the dashboard's links and its history fetch carry the prefix,
and the app's own routes are unaffected."""

from __future__ import annotations

import os
import re
import sys

import httpx
import pytest
from support import PACKAGE_ROOT, SUPPORT, free_port, requests_total, running_process
from support.lifespan_apps import ADMIN_TOKEN

pytestmark = pytest.mark.integration

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("MONITORING_", "ALERT"))},
       "PYTHONPATH": PACKAGE_ROOT}
PREFIX = "/prefix"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_monitoring_endpoints_under_a_root_path() -> None:
    port = free_port()
    # What the proxy forwards: the path below the prefix (uvicorn puts the prefix back in
    # scope["path"] and sets scope["root_path"]).
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "uvicorn", "lifespan_apps:starlette", "--app-dir",
               str(SUPPORT), "--host", "127.0.0.1", "--port", str(port),
               "--root-path", PREFIX]
    with running_process(command, f"{base}/api/health/ready", env=ENV):
        # The app's own routes.
        assert httpx.get(f"{base}/", timeout=5).text == "ok"
        assert httpx.get(f"{base}/items/7", timeout=5).text == "ok"
        assert httpx.get(f"{base}/nope", timeout=5).status_code == 404

        assert httpx.get(f"{base}/api/health/live", timeout=5).status_code == 200
        assert httpx.get(f"{base}/api/health", timeout=5).status_code in (200, 503)
        assert httpx.get(f"{base}/api/health/app", timeout=5).status_code in (200, 503)
        scrape = httpx.get(f"{base}/api/metrics", timeout=5)
        assert scrape.status_code == 200
        assert requests_total(scrape.text, "/items/{item_id}") == 1
        assert httpx.get(f"{base}/api/alerts", headers=ADMIN, timeout=5).status_code == 200

        page = httpx.get(f"{base}/admin/monitoring", headers=ADMIN, timeout=5)
        assert page.status_code == 200
        links = re.findall(r'(?:href|src|data-history-url)="(/[^"]*)"', page.text)
        assert links and all(link.startswith(f"{PREFIX}/") for link in links), links
        assert f'data-history-url="{PREFIX}/admin/monitoring/history.json"' in page.text
        assert f'href="{PREFIX}/api/metrics"' in page.text
        # Every link, fetched as the browser would through the proxy, answers.
        for link in set(links):
            below = link[len(PREFIX):]
            answer = httpx.get(f"{base}{below}", headers=ADMIN, timeout=5)
            assert answer.status_code == 200, link
        history = httpx.get(f"{base}/admin/monitoring/history.json", headers=ADMIN, timeout=5)
        assert history.status_code == 200 and isinstance(history.json(), dict)
