"""The demo app served on 0.0.0.0: its webhook sink takes only deliveries signed with the
webhook secret and validates them (4xx with a message, never a 500), its cache is bounded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support import client

from asgi_monitor.alerting.channels import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from asgi_monitor.config import WebhookSettings
from asgi_monitor.demo import app as demo
from asgi_monitor.demo.app import CACHE_MAX_ENTRIES, CACHE_MAX_KEY_LENGTH, create_app
from asgi_monitor.demo.run import demo_environment
from asgi_monitor.monitor import Monitor

SECRET = "demo-sink-secret-0123456789"
ALERT = {"version": "4", "status": "firing",
         "alerts": [{"status": "firing", "labels": {"alertname": "payments_unreachable"}}]}


@pytest.fixture
def app(make_monitor: Callable[..., Monitor], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(demo, "_cache", {})
    monitor = make_monitor(webhooks=WebhookSettings(secret=SECRET))
    return create_app(monitor.config)


def signed(content: bytes, *, secret: str = SECRET, timestamp: int | None = None
           ) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(secret, stamp, content),
            "content-type": "application/json"}


async def post(app: Any, content: bytes, headers: dict[str, Any]) -> httpx.Response:
    async with client(app) as c:
        return await c.post("/demo/webhook", content=content, headers=headers)


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert isinstance(message, str) and message
    return message


async def test_a_signed_delivery_is_printed(app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    content = json.dumps(ALERT).encode()
    response = await post(app, content, signed(content))
    assert response.status_code == 200
    assert response.json() == {"received": True}
    assert "[webhook sink] 'payments_unreachable' 'firing'" in capsys.readouterr().out


async def test_the_webhook_channel_delivers_to_the_sink(
    app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # The demo's own channel signs exactly the bytes it sends.
    from asgi_monitor.alerting.channels import WebhookChannel
    from asgi_monitor.secret import Secret

    channel = WebhookChannel(Secret("http://test/demo/webhook"), secret=Secret(SECRET))
    content = json.dumps(ALERT).encode()
    response = await post(app, content, {**channel.headers(content),
                                         "content-type": "application/json"})
    assert response.status_code == 200


@pytest.mark.parametrize("headers", [
    {},  # anonymous
    {TIMESTAMP_HEADER: "1"},
    {SIGNATURE_HEADER: "sha256=00"},
    {TIMESTAMP_HEADER: "not-a-time", SIGNATURE_HEADER: "sha256=00"},
])
async def test_unsigned_deliveries_are_refused(app: Any, headers: dict[str, str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    response = await post(app, json.dumps(ALERT).encode(), headers)
    assert "signed delivery" in assert_error(response, 401)
    assert "[webhook sink]" not in capsys.readouterr().out


async def test_a_wrong_signature_is_refused(app: Any) -> None:
    content = json.dumps(ALERT).encode()
    wrong: list[dict[str, Any]] = [
        signed(content, secret="another-secret"), signed(b"{}"),
        {**signed(content), SIGNATURE_HEADER: b"sha256=" + b"\xfc" * 64}]  # not ASCII
    for headers in wrong:
        assert "signature" in assert_error(await post(app, content, headers), 401)


@pytest.mark.parametrize("age", [301, -301, 10**9])
async def test_an_old_or_future_delivery_is_refused(app: Any, age: int) -> None:
    content = json.dumps(ALERT).encode()
    response = await post(app, content, signed(content, timestamp=int(time.time()) - age))
    assert "seconds old" in assert_error(response, 401)


async def test_without_a_secret_the_sink_takes_nothing(
    make_monitor: Callable[..., Monitor]
) -> None:
    app = create_app(make_monitor().config)
    content = json.dumps(ALERT).encode()
    response = await post(app, content, signed(content))
    assert "ALERT_WEBHOOK_SECRET" in assert_error(response, 403)


def test_the_demo_generates_a_secret_for_its_sink() -> None:
    env = demo_environment(8000, email=False)
    assert len(env["ALERT_WEBHOOK_SECRET"]) >= 32
    assert env["ALERT_WEBHOOK_URL"].endswith("/demo/webhook")


@pytest.mark.parametrize("content", [
    b"", b"{", b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000, b"null", b"[]", b'"x"', b"{}",
    b'{"alerts": {}}', b'{"alerts": [1]}', b'{"alerts": [{"labels": [], "status": "x"}]}',
    b'{"alerts": [{"labels": {}}]}', b'{"alerts": [{"labels": {}, "status": 5}]}',
    b'{"alerts": [' + b"9" * 5000 + b"]}",
])
async def test_malformed_signed_bodies_are_400(app: Any, content: bytes) -> None:
    assert_error(await post(app, content, signed(content)), 400)


async def test_an_oversized_body_is_413(app: Any) -> None:
    content = b'{"alerts": [], "x": "' + b"x" * (300 * 1024) + b'"}'
    assert_error(await post(app, content, signed(content)), 413)


async def test_labels_cannot_forge_console_lines(app: Any,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    forged = {"alerts": [{"status": "firing\n[webhook sink] forged resolved",
                          "labels": {"alertname": "x\n[webhook sink] fake firing"}}]}
    content = json.dumps(forged).encode()
    assert (await post(app, content, signed(content))).status_code == 200
    lines = [line for line in capsys.readouterr().out.splitlines() if "[webhook sink]" in line]
    assert len(lines) == 1 and lines[0].startswith("[webhook sink] ")


# -- the cache ------------------------------------------------------------------------------------
async def test_cache_keys_are_bounded_in_length(app: Any) -> None:
    async with client(app) as c:
        ok = await c.get("/cache/" + "k" * CACHE_MAX_KEY_LENGTH)
        long = await c.get("/cache/" + "k" * (CACHE_MAX_KEY_LENGTH + 1))
    assert ok.status_code == 200
    assert "at most" in assert_error(long, 400)
    assert len(demo._cache) == 1


async def test_the_cache_is_bounded_in_size(app: Any) -> None:
    async with client(app) as c:
        for i in range(CACHE_MAX_ENTRIES + 50):
            assert (await c.get(f"/cache/key-{i}")).status_code == 200
        assert len(demo._cache) == CACHE_MAX_ENTRIES
        assert "key-0" not in demo._cache  # the oldest went first
        assert f"key-{CACHE_MAX_ENTRIES + 49}" in demo._cache
        again = await c.get(f"/cache/key-{CACHE_MAX_ENTRIES + 49}")
    assert again.json()["value"] == f"value-of-key-{CACHE_MAX_ENTRIES + 49}"


# -- the login ------------------------------------------------------------------------------------
@pytest.mark.parametrize("content", [b"{", b"[]", b"null", b"\xff", b"[" * 50_000])
async def test_a_malformed_login_is_400(app: Any, content: bytes) -> None:
    async with client(app) as c:
        response = await c.post("/login", content=content,
                                headers={"content-type": "application/json"})
    assert_error(response, 400)


async def test_the_login_still_works(app: Any) -> None:
    async with client(app) as c:
        good = await c.post("/login", json={"password": "demo"})
        bad = await c.post("/login", json={"password": "nope"})
    assert (good.status_code, bad.status_code) == (200, 401)


def test_the_email_sink_prints_a_folded_subject_whole() -> None:
    from email.message import EmailMessage
    from email.policy import SMTP

    from asgi_monitor.demo.run import mail_summary

    subject = ("[CRITICAL] high_error_rate: HTTP 5xx error rate above 5% over 30 s on "
               "asgi-monitor-demo (value 12.47 %) — résumé")
    message = EmailMessage()
    message["Subject"] = subject
    message["To"] = "oncall@localhost"
    message.set_content("body")
    raw = message.as_bytes(policy=SMTP)
    assert b"\r\n " in raw.split(b"\r\n\r\n")[0]  # folded (and encoded) as sent over SMTP
    assert mail_summary(raw, ["oncall@localhost"]) == (
        f"to oncall@localhost: Subject: {subject}")


async def test_the_sink_is_not_the_shops_traffic(app: Any) -> None:
    # The sink serves the demo, not its users: its deliveries (and refusals) count nowhere, so
    # the dashboard's busiest routes, rates and SLOs are the shop's alone.
    content = json.dumps(ALERT).encode()
    async with client(app) as c:
        assert (await c.post("/demo/webhook", content=content,
                             headers=signed(content))).status_code == 200
        assert (await c.post("/demo/webhook", content=b"{}", headers={})).status_code == 401
        assert (await c.get("/items/1")).status_code == 200
        metrics = (await c.get("/api/metrics")).text
    assert 'route="/items/{item_id}"' in metrics
    assert "/demo/webhook" not in metrics
    routes = set(app.monitor.sampler.take().routes)
    assert "GET /items/{item_id}" in routes
    assert not any("/demo/webhook" in route for route in routes)
