"""Cross-site request forgery against the admin endpoints, in real headless Chromium.

The admin's browser holds a way in (Basic credentials it answers the challenge with, or a
SameSite=Lax session cookie the ``authorize`` hook accepts) and then opens a page served by a
second local server on another port: another site (``localhost`` vs ``127.0.0.1``) or a sibling
origin on the same site (``127.0.0.1``, another port). That page's forms and fetches must not
create a silence; the same request from the admin's own page still does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route
from support import chromium, serve

from asgi_monitor import MonitoringConfig, MonitoringMiddleware, build_monitor
from asgi_monitor.config import GateSettings

USER, PASSWORD = "ops", "browser-csrf-password"
SESSION = "admin-session-0123456789"
YEAR = 525_600  # minutes
# A text/plain form posts "name=value": this name and value make that text parse as JSON.
FORM_NAME = (json.dumps({"rule": "high_error_rate", "duration_minutes": YEAR})[:-1]
             + ', "comment": "')
FORM_VALUE = '"}'

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def session_hook(scope: MutableMapping[str, Any]) -> bool:
    return f"session={SESSION}".encode() in dict(scope["headers"]).get(b"cookie", b"")


@pytest.fixture
def app() -> Iterator[MonitoringMiddleware]:
    target = Starlette(routes=[Route("/", lambda request: PlainTextResponse("home"))])
    config = MonitoringConfig(gate=GateSettings(
        admin_username=USER, admin_password=PASSWORD, authorize=session_hook,
        rate_limit_per_second=0))
    yield MonitoringMiddleware(target, monitor=build_monitor(config, CollectorRegistry()))


def attacker_app(target: str) -> Starlette:
    """The other site: a page auto-submitting a text/plain form, and a blank page to run
    fetch() from."""
    silences = f"{target}/api/alerts/silences"

    async def form(request: Request) -> HTMLResponse:
        enctype = request.query_params.get("enctype", "text/plain")
        return HTMLResponse(
            f'<form method="post" action="{silences}" enctype="{enctype}">'
            f"<input type=\"hidden\" name='{FORM_NAME}' value='{FORM_VALUE}'></form>"
            "<script>document.forms[0].submit()</script>")

    async def blank(request: Request) -> HTMLResponse:
        return HTMLResponse("<p>nothing to see</p>")

    return Starlette(routes=[Route("/form", form), Route("/blank", blank)])


FETCHES = """async ([url, minutes]) => {
  const body = JSON.stringify({rule: "high_error_rate", duration_minutes: minutes});
  const results = {};
  const attempts = {
    // No preflight: the response is opaque, but the request reaches the server.
    plain: {mode: "no-cors", headers: {"Content-Type": "text/plain"}},
    // JSON needs a CORS preflight, which the sub-app never grants.
    json: {headers: {"Content-Type": "application/json"}},
  };
  for (const [name, options] of Object.entries(attempts)) {
    try {
      const response = await fetch(
        url, {method: "POST", credentials: "include", body, ...options});
      results[name] = response.type === "opaque" ? "opaque" : response.status;
    } catch (error) {
      results[name] = "blocked";
    }
  }
  return results;
}"""


def admin_page(browser: Any, way: str, base: str) -> Any:
    """A page of a browser the admin is logged in with: Basic credentials, or a SameSite=Lax
    session cookie for ``base``."""
    options: dict[str, Any] = {}
    if way == "basic":
        options["http_credentials"] = {"username": USER, "password": PASSWORD}
    context = browser.new_context(**options)
    if way == "cookie":
        context.add_cookies([{"name": "session", "value": SESSION, "url": base,
                              "sameSite": "Lax", "httpOnly": True}])
    return context.new_page()


def _silence_posts(statuses: list[tuple[str, int]]) -> list[int]:
    return [status for method, status in statuses if method == "POST"]


@pytest.mark.parametrize("way", ["basic", "cookie"])
@pytest.mark.parametrize("attacker_host", ["localhost", "127.0.0.1"],
                         ids=["other site", "sibling origin"])
def test_a_page_on_another_origin_cannot_create_a_silence(
    app: MonitoringMiddleware, way: str, attacker_host: str
) -> None:
    from playwright.sync_api import Response

    with serve(app) as base, serve(attacker_app(base)) as other:
        attacker = other.replace("127.0.0.1", attacker_host)
        assert attacker != base
        with chromium() as browser:
            page = admin_page(browser, way, base)
            page.set_default_timeout(20_000)
            seen: list[tuple[str, int]] = []

            def on_response(response: Response) -> None:
                if response.url.startswith(f"{base}/api/alerts/silences"):
                    seen.append((response.request.method, response.status))

            page.on("response", on_response)
            # The admin opens the dashboard: the way in works.
            opened = page.goto(f"{base}/admin/monitoring", wait_until="load")
            assert opened is not None and opened.status == 200

            for enctype in ("text/plain", "application/x-www-form-urlencoded",
                            "multipart/form-data"):
                with page.expect_response(
                        lambda r: r.url == f"{base}/api/alerts/silences") as submitted:
                    page.goto(f"{attacker}/form?enctype={enctype}")
                assert submitted.value.status == 403, enctype
                page.wait_for_load_state("load")
                assert "error" in page.content()

            page.goto(f"{attacker}/blank", wait_until="load")
            results = page.evaluate(FETCHES, [f"{base}/api/alerts/silences", YEAR])
            assert results == {"plain": "opaque", "json": "blocked"}, results
            page.wait_for_timeout(300)  # let the opaque one's response event arrive
            assert _silence_posts(seen) and set(_silence_posts(seen)) == {403}, seen
            page.context.close()
    assert app.monitor.alerts.silences.list() == []


@pytest.mark.parametrize("way", ["basic", "cookie"])
def test_the_admins_own_page_can_still_create_a_silence(
    app: MonitoringMiddleware, way: str
) -> None:
    
    with serve(app) as base:
        with chromium() as browser:
            page = admin_page(browser, way, base)
            page.set_default_timeout(20_000)
            opened = page.goto(f"{base}/admin/monitoring", wait_until="load")
            assert opened is not None and opened.status == 200
            # What a script of the dashboard would send (it only reads today).
            status = page.evaluate("""async () => {
              const response = await fetch("/api/alerts/silences", {
                method: "POST", credentials: "same-origin",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({rule: "high_error_rate", duration_minutes: 5,
                                      comment: "deploying"})});
              return response.status;
            }""")
            assert status == 201
            page.context.close()
    [silence] = app.monitor.alerts.silences.list()
    assert silence.comment == "deploying"
