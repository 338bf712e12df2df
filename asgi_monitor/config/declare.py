"""How a setting is declared: its default, its environment variables, its check and its help.

Every field of a settings section is made with :func:`setting`. The declaration is all there is:
the section validates itself from it (:class:`Section`), the environment loader parses from it,
and the configuration reference (``docs/configuration.md``, ``asgi-monitor config --reference``)
is printed from it, so the three cannot drift.

Checks are a handful of reusable :class:`Check` values (``positive_seconds``, ``percent``,
``port``, ...) rather than code per field; a section adds a ``_check_together`` method only for
rules that relate two fields (a warning threshold below its critical one).

A section is a frozen dataclass, made one when it is first used (created, or its fields read)
rather than when its module is imported: the dataclass machinery compiles several methods per
class, which was most of what ``import asgi_monitor`` cost (benchmarks/README.md).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from ..errors import ConfigError
from ..secret import Secret

__all__ = [
    "Check", "Env", "Section", "Setting", "any_callable", "boolean", "buckets", "declared",
    "email_list", "http_url", "identifier", "label_pairs", "label_set", "label_text",
    "method_list",
    "method_names",
    "milliseconds", "minutes", "networks", "non_negative", "number", "optional_path_prefix",
    "path_list", "path_or_off", "path_prefix", "pattern", "percent", "port", "positive_seconds",
    "rate", "seconds_at_least", "secret_text", "setting", "text",
    "text_list", "token", "whole", "whole_at_least",
]

# -- parsers: environment text -> value; a ValueError's message says what is accepted ------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("true/false (also 1/0, yes/no, on/off)")


def number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("a number") from None


def whole(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("a whole number") from None


def text(raw: str) -> str:
    return raw.strip()


def secret_text(raw: str) -> Secret:
    return Secret(raw.strip())


def text_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def method_list(raw: str) -> tuple[str, ...]:
    """HTTP methods, comma-separated; upper-cased as servers send them."""
    return tuple(method.upper() for method in text_list(raw))


def label_pairs(raw: str) -> tuple[tuple[str, str], ...]:
    """``name=value`` pairs, comma-separated: ``service=shop,env=prod``."""
    pairs = []
    for part in text_list(raw):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError("name=value pairs separated by commas (service=shop,env=prod)")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def path_or_off(raw: str) -> str:
    """A path, or ``off`` for a path not served (a blank variable means unset, as for all)."""
    value = raw.strip()
    return "" if value.lower() == "off" else value


def milliseconds(raw: str) -> float:
    """A variable in milliseconds for a setting kept in seconds."""
    return number(raw) / 1000.0


def minutes(raw: str) -> float:
    """A variable in minutes for a setting kept in seconds."""
    return number(raw) * 60.0


Parser = Callable[[str], Any]


# NamedTuples, not dataclasses: one is made per field on import, and the class costs a fraction.
class Env(NamedTuple):
    """An environment variable that sets a field, with its own parser when its unit differs."""

    name: str
    parse: Parser | None = None


# -- checks: what a valid value is, and how to say so ------------------------------------------


class Check(NamedTuple):
    """A reusable validator: ``accepts(value)`` and the phrase an error message uses."""

    accepted: str
    accepts: Callable[[Any], bool]


def _is_number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole_at_least(low: int) -> Check:
    return Check(f"a whole number >= {low}", lambda v: _is_whole(v) and v >= low)


def seconds_at_least(low: float) -> Check:
    return Check(f"a number of seconds >= {low:g}", lambda v: _is_number(v) and v >= low)


def _is_identifier(value: str) -> bool:
    """Letters, digits and '_', not starting with a digit (ASCII: as Prometheus names)."""
    return value.isascii() and value.isidentifier()


def _valid_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except (TypeError, ValueError):
        return False
    return True


# The characters RFC 3986 allows in a registered name (reg-name): unreserved, pct-encoded and
# sub-delims. A set, not a compiled pattern: config modules compile no regex at import.
_HOST_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                        "._~%!$&'()*+,;=-")


def _http_url(value: object) -> bool:
    """An absolute http(s) URL that parses whole: the scheme in any case (RFC 3986 section 3.1
    says it is case-insensitive), a host, a port in 1..65535 if given, and no white space or
    control character anywhere (``http://a b`` is two words, not a host)."""
    raw = value.get_secret_value() if isinstance(value, Secret) else value
    if not isinstance(raw, str) or any(c.isspace() or ord(c) < 32 or ord(c) == 127
                                       for c in raw):
        return False
    try:
        parts = urllib.parse.urlsplit(raw)
        port = parts.port  # a ValueError when out of range or not a number
    except ValueError:  # also an unclosed "[" of an IPv6 address
        return False
    if parts.scheme.lower() not in ("http", "https") or port == 0:
        return False
    host = parts.hostname or ""
    if parts.netloc.rpartition("@")[2].startswith("["):
        return _valid_network(host) and "/" not in host
    return bool(host) and all(c in _HOST_CHARS for c in host)


def _buckets(value: object) -> bool:
    if not isinstance(value, tuple) or not value or not all(_is_number(v) for v in value):
        return False
    return list(value) == sorted(set(value))


positive_seconds = Check("a number of seconds > 0", lambda v: _is_number(v) and v > 0)
non_negative = Check("a number >= 0", lambda v: _is_number(v) and v >= 0)
rate = Check("a number of requests per second >= 0 (0 disables the limit)",
             lambda v: _is_number(v) and v >= 0)
percent = Check("a percentage from 0 to 100", lambda v: _is_number(v) and 0 <= v <= 100)
port = Check("a port number from 1 to 65535", lambda v: _is_whole(v) and 0 < v < 65536)
path_prefix = Check("a path starting with '/' and not ending with '/'",
                    lambda v: isinstance(v, str) and v.startswith("/") and not v.endswith("/"))
optional_path_prefix = Check(
    "a path starting with '/' and not ending with '/', or empty (off)",
    lambda v: v == "" or path_prefix.accepts(v))
path_list = Check("paths starting with '/' (comma-separated in the environment)",
                  lambda v: isinstance(v, tuple)
                  and all(isinstance(p, str) and p.startswith("/") for p in v))
identifier = Check("letters, digits and '_' not starting with a digit (or empty)",
                   lambda v: isinstance(v, str) and (not v or _is_identifier(v)))
http_url = Check("an http:// or https:// URL with a host (and a port from 1 to 65535 if given)",
                 lambda v: v is None or v == "" or _http_url(v))
token = Check("a token without spaces", lambda v: v is None or not any(
    c.isspace() for c in (v.get_secret_value() if isinstance(v, Secret) else str(v))))
email_list = Check("comma-separated e-mail addresses", lambda v: isinstance(v, tuple) and all(
    isinstance(a, str) and "@" in a for a in v))
networks = Check("comma-separated networks such as 10.0.0.0/8, 192.168.1.5 or ::1/128",
                 lambda v: isinstance(v, tuple) and all(_valid_network(n) for n in v))
buckets = Check("a non-empty, strictly increasing sequence of numbers", _buckets)
any_callable = Check("a callable", lambda v: v is None or callable(v))
method_names = Check(
    "HTTP methods such as OPTIONS,HEAD (comma-separated in the environment)",
    lambda v: isinstance(v, tuple) and all(isinstance(m, str) and m.isascii() and m.isalpha()
                                           and m.isupper() for m in v))


def _valid_pattern(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        re.compile(value)
    except re.error:
        return False
    return True


pattern = Check("a regular expression (Python's re syntax) or empty", _valid_pattern)


# A label value goes into every series, alert and e-mail Subject that carries it: a long one
# multiplies the scrape's size, a newline breaks a mail header.
MAX_LABEL_VALUE_CHARS = 256


def _plain_text(value: object) -> bool:
    """A str of at most MAX_LABEL_VALUE_CHARS characters with no control character (C0, DEL
    or C1: a newline or an escape sequence in a label would forge log lines or mail headers)."""
    return (isinstance(value, str) and len(value) <= MAX_LABEL_VALUE_CHARS
            and not any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value))


label_text = Check(f"at most {MAX_LABEL_VALUE_CHARS} characters without control characters "
                   "(no newline, tab or escape)", _plain_text)


def label_set(reserved: tuple[str, ...]) -> Check:
    """Distinct Prometheus label names, none of ``reserved`` nor ``__``-prefixed, with values
    that are :data:`label_text`."""

    def accepts(value: object) -> bool:
        if not isinstance(value, tuple) or not all(
                isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in value):
            return False
        names = [name for name, _ in value]
        return (len(set(names)) == len(names)
                and all(_is_identifier(n) and not n.startswith("__") and n not in reserved
                        for n in names)
                and all(label_value and _plain_text(label_value) for _, label_value in value))

    shown = ", ".join(reserved)
    return Check(f"distinct name=value pairs, each name letters, digits and '_' (not {shown} "
                 f"nor starting with '__') and each value non-empty, at most "
                 f"{MAX_LABEL_VALUE_CHARS} characters and without control characters", accepts)


def one_of(*choices: str) -> Check:
    return Check("one of " + ", ".join(choices), lambda v: v in choices)


non_empty_paths = Check("a tuple of non-empty paths (comma-separated in the environment)",
                        lambda v: isinstance(v, tuple) and all(isinstance(p, str) and p for p in v))


def _shown(value: object, limit: int = 100) -> str:
    """``repr(value)``, cut to ``limit`` characters: a 10 KB value must not become a 10 KB
    error message."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} characters)"


# -- the declaration ----------------------------------------------------------------------------


class Setting(NamedTuple):
    """What :func:`setting` records in a field's metadata."""

    help: str
    env: tuple[Env, ...] = ()
    parse: Parser | None = None
    check: Check | None = None
    # Held as a Secret: a plain string from code is wrapped, an empty one means unset.
    is_secret: bool = False
    # A variable naming a file that holds the value (Docker/Kubernetes secrets).
    file_env: str | None = None


def setting(default: Any, *, help: str, env: str | Env | tuple[str | Env, ...] = (),
            parse: Parser | None = None, check: Check | None = None, is_secret: bool = False,
            file_env: str | None = None, compare: bool = True) -> Any:
    """A section field: its default, where it comes from, what it accepts and what it means."""
    names = (env,) if isinstance(env, (str, Env)) else env
    declared_env = tuple(Env(n) if isinstance(n, str) else n for n in names)
    meta = Setting(help=help, env=declared_env, parse=parse, check=check, is_secret=is_secret,
                   file_env=file_env)
    return field(default=default, compare=compare, metadata={"setting": meta})


def declared(cls: type[Any]) -> Iterator[tuple[dataclasses.Field[Any], Setting]]:
    """The fields of a section class with their declarations (nested sections excluded)."""
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is not None:
            yield f, meta


if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_: object) -> Callable[[type], type]:
        return lambda cls: cls  # a marker for type checkers only

_making = threading.RLock()  # re-entered when a section derives from another


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class _Declared(type):
    """The metaclass of :class:`Section`: a section becomes a frozen dataclass when it is first
    created or its fields are first read (``dataclasses.fields``, ``is_dataclass``)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if "__dataclass_fields__" not in cls.__dict__:
            _make_dataclass(cls)
        return super().__call__(*args, **kwargs)

    if not TYPE_CHECKING:  # hidden from type checkers, which would accept any class attribute

        def __getattr__(cls, name: str) -> Any:
            # Only reached when the class has no such attribute: before it is made a dataclass.
            if name == "__dataclass_fields__" and cls is not Section:
                _make_dataclass(cls)
                return cls.__dict__[name]
            raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")


def _make_dataclass(cls: type) -> None:
    with _making:
        if "__dataclass_fields__" not in cls.__dict__:
            # Equality, hashing and repr are Section's own, written once over the fields rather
            # than generated (compiled) per class: half of what making a dataclass costs.
            dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)


class Section(metaclass=_Declared):
    """Base of every frozen settings section: validates the declared fields once, on creation.

    Subclasses declare their fields with :func:`setting` (nested sections with
    ``field(default_factory=...)``) and need no decorator: each is made a frozen dataclass on
    first use. ``name`` is the section's attribute on :class:`~asgi_monitor.config.
    MonitoringConfig` ("" for the root).
    """

    name: ClassVar[str] = ""
    # A section whose feature can be off names its on/off field and the feature: its other
    # settings are still checked when set (a typo should not wait for the day the feature is
    # turned on), but the error says the feature is off, so the fix can be to unset them.
    switch: ClassVar[str] = ""
    feature: ClassVar[str] = ""
    # True where a setting's later variables are fallbacks (OpenTelemetry's standard ones behind
    # our own), not rivals: the first one set wins, the others are not even read, instead of
    # the "set differently" error.
    fallbacks: ClassVar[bool] = False
    # Every section is a dataclass; said here so type checkers accept dataclasses.fields(section).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}"
                          for f in dataclasses.fields(self) if f.repr)
        return f"{type(self).__qualname__}({shown})"

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self) if f.compare)

    def __post_init__(self) -> None:
        for f, meta in declared(type(self)):
            value = getattr(self, f.name)
            if meta.is_secret:
                # From code a plain string is fine; an empty one means unset.
                value = (Secret(value) if isinstance(value, str) else value) or None
                object.__setattr__(self, f.name, value)
            if meta.check is not None and not meta.check.accepts(value):
                self._fail(f.name, meta.check.accepted, value, note=self._off_note(f.name))
        self._check_together()

    def _off_note(self, field_name: str) -> str:
        """What an error about ``field_name`` adds when this section's feature is off."""
        if not self.switch or field_name == self.switch or getattr(self, self.switch):
            return ""
        return self._off_phrase(field_name)

    @classmethod
    def _off_phrase(cls, field_name: str) -> str:
        switch = " / ".join(cls.env_names(cls.switch)) or cls.qualified(cls.switch)
        what = " / ".join(cls.env_names(field_name)) or cls.qualified(field_name)
        return (f"; {cls.feature} are off ({switch} is not true), so {what} is unused: "
                f"unset it or fix it")

    def _check_together(self) -> None:
        """Rules that relate several fields; a section overrides this when it has some."""

    @classmethod
    def qualified(cls, field_name: str) -> str:
        return f"{cls.name}.{field_name}" if cls.name else field_name

    @classmethod
    def env_names(cls, field_name: str) -> tuple[str, ...]:
        for f, meta in declared(cls):
            if f.name == field_name:
                return tuple(e.name for e in meta.env)
        return ()

    @classmethod
    def _fail(cls, field_name: str, accepted: str, value: object, note: str = "") -> None:
        names = cls.env_names(field_name)
        where = f"{' / '.join(names)} ({cls.qualified(field_name)})" if names \
            else cls.qualified(field_name)
        shown = "<secret>" if isinstance(value, Secret) else _shown(value)
        raise ConfigError(f"{where} must be {accepted}, got {shown}{note}")

    @classmethod
    def _env_switch_off(cls, environ: Mapping[str, str]) -> bool:
        """Whether ``environ`` leaves this section's feature off (for error messages only)."""
        if not cls.switch:
            return False
        try:
            value = cls.env_values(environ, only=cls.switch).get(cls.switch)
        except ConfigError:
            return False  # the switch itself is wrong: that error comes first
        if value is None:
            value = cls.__dataclass_fields__[cls.switch].default
        return not value

    @classmethod
    def env_values(cls, environ: Mapping[str, str], only: str = "") -> dict[str, Any]:
        """The keyword arguments this section's variables in ``environ`` give.

        An empty (or blank) variable means unset: compose files write ``SMTP_PORT=""`` for a
        variable they pass through, and that must not stop the app.
        """
        values: dict[str, Any] = {}
        for f, meta in declared(cls):
            if only and f.name != only:
                continue
            found: list[tuple[str, Any]] = []
            for var in meta.env:
                raw = environ.get(var.name, "")
                if not raw.strip() or (found and cls.fallbacks):
                    continue
                parse = var.parse or meta.parse or text
                try:
                    value = parse(raw)
                except ValueError as exc:
                    shown = "<secret>" if meta.is_secret else _shown(raw)
                    note = (cls._off_phrase(f.name) if f.name != cls.switch
                            and cls._env_switch_off(environ) else "")
                    raise ConfigError(f"{var.name} ({cls.qualified(f.name)}) must be {exc}, "
                                      f"got {shown}{note}") from None
                if meta.is_secret and not value:
                    continue  # an empty secret (common in compose files) means unset
                found.append((var.name, value))
            if meta.file_env and environ.get(meta.file_env, "").strip():
                found.append((meta.file_env, _read_secret_file(meta.file_env,
                                                               environ[meta.file_env])))
            if len({repr(v) if not isinstance(v, Secret) else v.get_secret_value()
                    for _, v in found}) > 1:
                raise ConfigError(f"{' and '.join(n for n, _ in found)} set "
                                  f"{cls.qualified(f.name)} differently: use one of the two")
            if found:
                values[f.name] = found[0][1]
        return values


def _read_secret_file(variable: str, path: str) -> Secret:
    try:
        return Secret.from_file(path)
    except UnicodeDecodeError:
        accepted = "a readable UTF-8 file holding the secret (not UTF-8)"
    except OSError as exc:
        accepted = f"a readable UTF-8 file holding the secret ({exc.strerror or exc})"
    except ValueError:
        accepted = "a file holding the secret, not an empty one"
    raise ConfigError(f"{variable} must be {accepted}, got {path!r}")
