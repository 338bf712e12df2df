"""The token bucket and the login lock-out, on a clock the tests move by hand."""

from __future__ import annotations

import asyncio

import pytest
from support import Clock

from asgi_monitor.web.ratelimit import LoginGuard, LoginLocked, RateLimiter


def test_bucket_allows_a_burst_then_refills_at_the_rate() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(rate=2.0, burst=3, max_clients=10, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("a") == 1  # one token takes 0.5 s: Retry-After rounds up to 1
    assert limiter.acquire("b") == 0  # buckets are per client
    clock.advance(0.5)
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 1
    clock.advance(60)  # refills up to the burst, not beyond
    assert [limiter.acquire("a") for _ in range(4)] == [0, 0, 0, 1]


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    clock = Clock(1000.0)
    limiter = RateLimiter(rate=0.1, burst=1, max_clients=10, clock=clock)
    assert limiter.acquire("a") == 0
    assert limiter.acquire("a") == 10
    clock.advance(9.5)
    assert limiter.acquire("a") == 1


def test_rate_zero_disables_the_limit() -> None:
    limiter = RateLimiter(rate=0, burst=1, max_clients=1, clock=Clock(1000.0))
    assert all(limiter.acquire("a") == 0 for _ in range(1000))
    assert len(limiter.clients) == 0


def test_client_table_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=3, clock=Clock(1000.0))
    for n in range(10_000):
        limiter.acquire(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter.clients) == 3


def test_client_table_evicts_the_least_recently_seen() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=3, clock=Clock(1000.0))
    for client in ("a", "b", "c"):
        limiter.acquire(client)
    limiter.acquire("a")  # "a" is now the most recently seen, "b" the oldest
    limiter.acquire("d")
    assert [c in limiter.clients for c in ("a", "b", "c", "d")] == [True, False, True, True]
    assert limiter.acquire("b") == 0  # an evicted client starts again with a full bucket


def test_lockout_after_max_failures_then_expires() -> None:
    clock = Clock(1000.0)
    guard = LoginGuard(max_failures=3, lockout=60, max_clients=10, clock=clock)
    assert guard.failed("a") == 0
    assert guard.failed("a") == 0
    assert guard.locked("a") == 0
    assert guard.failed("a") == 60
    assert guard.locked("a") == 60
    assert guard.locked("b") == 0
    clock.advance(59.5)
    assert guard.locked("a") == 1
    clock.advance(0.5)
    assert guard.locked("a") == 0
    assert guard.failed("a") == 0  # a fresh window after the lock-out


def test_failures_outside_the_window_are_forgotten() -> None:
    clock = Clock(1000.0)
    guard = LoginGuard(max_failures=3, lockout=60, max_clients=10, clock=clock)
    guard.failed("a")
    guard.failed("a")
    clock.advance(61)
    assert guard.failed("a") == 0
    assert guard.failed("a") == 0
    assert guard.locked("a") == 0


def test_login_guard_is_bounded() -> None:
    guard = LoginGuard(max_failures=3, lockout=60, max_clients=100, clock=Clock(1000.0))
    for n in range(5000):
        guard.failed(f"client-{n}")
    assert len(guard.clients) == 100
    assert "client-4999" in guard.clients
    assert "client-0" not in guard.clients


def test_awaiting_login_checks_never_exceed_the_failures_left() -> None:
    async def scenario() -> tuple[list[str], int]:
        guard = LoginGuard(max_failures=3, lockout=60, max_clients=10, clock=Clock(1000.0))
        guard.failed("a")  # one failure already: two checks may run at once
        running = 0
        peak = 0
        outcomes: list[str] = []

        async def wrong_guess() -> None:
            nonlocal running, peak
            try:
                async with guard.attempt("a"):
                    running += 1
                    peak = max(peak, running)
                    await asyncio.sleep(0.01)
                    running -= 1
                    guard.failed("a")
                    outcomes.append("evaluated")
            except LoginLocked as locked:
                outcomes.append(f"locked {locked.wait}")

        await asyncio.gather(*(wrong_guess() for _ in range(10)))
        assert guard._attempts == {}  # nothing left behind once every check has ended
        return outcomes, peak

    outcomes, peak = asyncio.run(scenario())
    assert peak == 2
    assert sorted(outcomes) == ["evaluated"] * 2 + ["locked 60"] * 8


def test_a_successful_login_check_lets_the_waiting_ones_go_on() -> None:
    async def scenario() -> list[str]:
        guard = LoginGuard(max_failures=1, lockout=60, max_clients=10, clock=Clock(1000.0))
        outcomes: list[str] = []

        async def right() -> None:
            async with guard.attempt("a"):
                await asyncio.sleep(0.01)
                guard.succeeded("a")
                outcomes.append("ok")

        await asyncio.gather(*(right() for _ in range(5)))
        return outcomes

    assert asyncio.run(scenario()) == ["ok"] * 5


def test_a_locked_client_is_refused_before_any_check() -> None:
    guard = LoginGuard(max_failures=1, lockout=60, max_clients=10, clock=Clock(1000.0))
    guard.failed("a")

    async def scenario() -> None:
        async with guard.attempt("a"):
            pass

    with pytest.raises(LoginLocked):
        asyncio.run(scenario())
    assert guard._attempts == {}
