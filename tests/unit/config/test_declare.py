"""The declaration mechanism: a section becomes a frozen dataclass on first use, not on import,
and then behaves as one (fields, validation, equality, hashing, immutability)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest

from asgi_monitor import ConfigError
from asgi_monitor.config.declare import Section, boolean, port, setting


def _fresh() -> Any:
    # A new class per test: the package's own sections were made by earlier tests already.
    class Listener(Section):
        """A section only these tests declare."""

        name = "listener"

        port: int = setting(8080, env="LISTENER_PORT", check=port, help="where to listen")
        secure: bool = setting(False, env="LISTENER_SECURE", parse=boolean, help="TLS or not")

    return Listener


def test_a_section_is_made_a_dataclass_on_first_use_not_when_declared() -> None:
    listener = _fresh()
    assert "__dataclass_fields__" not in vars(listener)
    assert [f.name for f in dataclasses.fields(listener)] == ["port", "secure"]
    assert "__dataclass_fields__" in vars(listener)
    assert dataclasses.is_dataclass(listener)


def test_creating_one_makes_it_and_checks_the_declared_fields() -> None:
    listener = _fresh()
    with pytest.raises(ConfigError, match=r"LISTENER_PORT \(listener.port\) must be a port"):
        listener(port=0)
    made = listener(9090, True)
    assert (made.port, made.secure) == (9090, True)


def test_a_made_section_behaves_as_a_frozen_dataclass() -> None:
    listener = _fresh()
    one, same, other = listener(), listener(), listener(port=1)
    assert one == same and hash(one) == hash(same) and one != other
    assert repr(one).endswith(".Listener(port=8080, secure=False)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.port = 1
    assert dataclasses.replace(one, port=2).port == 2
    assert listener.env_values({"LISTENER_PORT": "81", "LISTENER_SECURE": "yes"}) == {
        "port": "81", "secure": True}


def test_many_threads_using_a_new_section_at_once_make_it_once() -> None:
    listener = _fresh()
    made: list[object] = []
    start = threading.Barrier(8)

    def use() -> None:
        start.wait()
        made.append(listener())

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 8 and all(m == listener() for m in made)
    assert len(dataclasses.fields(listener)) == 2


def test_the_base_itself_is_no_dataclass() -> None:
    assert not dataclasses.is_dataclass(Section)
    with pytest.raises(AttributeError):
        Section.no_such_attribute  # type: ignore[attr-defined]  # noqa: B018


def test_equality_hashing_and_repr_follow_the_fields_flags() -> None:
    # Section writes these once for every section; they honour compare= as a generated one would.
    class Hooked(Section):
        name = "hooked"

        limit: int = setting(1, help="a compared value")
        hook: object = setting(None, compare=False, help="a callable, not compared")

    one, other = Hooked(limit=2, hook=print), Hooked(limit=2, hook=len)
    assert one == other and hash(one) == hash(other)
    assert one != Hooked(limit=3) and one != (2,)
    assert repr(one).endswith("Hooked(limit=2, hook=<built-in function print>)")


def test_a_section_derived_from_another_is_made_with_its_base() -> None:
    base = _fresh()

    class Wider(base):  # type: ignore[misc, valid-type]
        backlog: int = setting(128, help="pending connections")

    assert "__dataclass_fields__" not in vars(base)
    wider = Wider(backlog=5)  # makes the base on the way (the lock is re-entered)
    assert (wider.port, wider.backlog) == (8080, 5)
    assert "__dataclass_fields__" in vars(base)
