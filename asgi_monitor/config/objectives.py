"""An SLO (re-exported by :mod:`asgi_monitor.slo`): which requests (a :class:`Selector`), what
makes one good (an :class:`SLI`), the objective and the period; and the multi-window burn-rate
alerts of the Google SRE workbook.

Everything is validated when created, with errors that name the SLO and the field, so a file
with a typo stops the app at startup instead of alerting on the wrong thing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..errors import ConfigError

__all__ = ["BURN_ALERTS", "MIN_PERIOD_DAYS", "SLI", "SLO", "WINDOWS", "BurnAlert", "Selector",
           "load_slo_file", "slos_from_data"]

# The windows the SLI is computed over (seconds), named as PromQL durations.
WINDOWS: tuple[tuple[str, int], ...] = (
    ("5m", 300), ("30m", 1800), ("1h", 3600), ("2h", 7200), ("6h", 21600), ("1d", 86400),
    ("3d", 259200),
)
# Used with fullmatch: "$" would also accept a trailing newline.
_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_-]*")
_METHOD_RE = re.compile(r"[A-Z]+")


@dataclass(frozen=True)
class BurnAlert:
    """One multi-window burn-rate alert: both windows must burn faster than ``factor``, which
    spends ``budget_percent`` of the period's error budget over the long window."""

    long_window: str
    short_window: str
    factor: float
    # "page" wakes someone up; "ticket" can wait for working hours.
    severity: Literal["page", "ticket"]
    budget_percent: float

    @property
    def name(self) -> str:
        return f"{self.long_window}_{self.short_window}"

    def for_period(self, period_seconds: float) -> BurnAlert:
        """This alert for a period of ``period_seconds``: the same share of the budget over
        the same windows, so the factor scales with the period (``budget_percent`` x period /
        long window)."""
        long_seconds = dict(WINDOWS)[self.long_window]
        factor = round(self.budget_percent / 100 * period_seconds / long_seconds, 4)
        return replace(self, factor=factor)

    @property
    def min_period_seconds(self) -> float:
        """The shortest period this alert is kept for. Its long window must fit in the period
        (3 days of errors cannot judge a 2-day period). A page also needs a factor of at least
        1: under 1 the budget would still last the whole period, which is no reason to wake
        anyone. A ticket keeps a factor under 1, as Sloth does: it says that this share of the
        budget went in its long window (10 % of a 28-day budget in 3 days is a burn of 0.93)."""
        long_seconds = dict(WINDOWS)[self.long_window]
        if self.severity == "page":
            return max(long_seconds, long_seconds * 100 / self.budget_percent)
        return long_seconds


# The SRE workbook's table (chapter 5, "Multiwindow, Multi-Burn-Rate Alerts"), for a 30-day
# period: 14.4x over 1h spends 2 % of the budget, 6x over 6h 5 %, 3x over 1d 10 %, 1x over 3d 10 %.
# The short window (1/12 of the long one) makes an alert stop soon after the burn stops.
# ``SLO.burn_alerts`` scales the factors to the SLO's period.
BURN_ALERTS: tuple[BurnAlert, ...] = (
    BurnAlert("1h", "5m", 14.4, "page", 2.0),
    BurnAlert("6h", "30m", 6.0, "page", 5.0),
    BurnAlert("1d", "2h", 3.0, "ticket", 10.0),
    BurnAlert("3d", "6h", 1.0, "ticket", 10.0),
)
# A period shorter than this leaves no alert (one day: the 1d/2h ticket's long window).
MIN_PERIOD_DAYS = min(alert.min_period_seconds for alert in BURN_ALERTS) / 86400


# Bounds on what a file may declare: each SLO adds recording rules, alert rules, dashboard
# panels and in-process points, and a name is a label value in all of them. The schema itself
# nests four levels ({"slos": [{"selector": {"routes": [...]}}]}).
MAX_NAME_CHARS = 64
MAX_SLOS = 100
MAX_DEPTH = 8
MAX_FILE_BYTES = 1024 * 1024


class FieldError(ConfigError):
    """A field's value refused: which ``field`` and the ``problem``; ``owner`` (an SLO's name,
    when known) leads the message. A file's loader puts the file and entry in front instead,
    so no message says where it is twice."""

    def __init__(self, field: str, problem: str, owner: str = "") -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{owner}: {field} {problem}" if owner else f"{field} {problem}")


def _shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` (exact: 0.5000000001 is not "0.5"), cut to ``limit`` characters."""
    try:
        shown = repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        return "an integer too long to show"
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown)} characters)"


def _fail(field: str, accepted: str, value: object, owner: str = "") -> FieldError:
    return FieldError(field, f"must be {accepted}, got {_shown(value)}", owner)


def _finite(value: object) -> bool:
    """A real number (not a bool) that is finite; an int too large for a float is not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class Selector:
    """Which requests count: every request, or those of some route templates and/or methods,
    and/or with some values of request labels (``labels={"tenant": "acme"}``: the labels the
    user chose, ``metrics.header_labels`` / ``metrics.request_labels``)."""

    routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", tuple(self.routes))
        labels = self.labels
        object.__setattr__(self, "labels", tuple(
            sorted(labels.items()) if isinstance(labels, Mapping) else labels))
        if not all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                   and p[0].isascii() and p[0].isidentifier() and isinstance(p[1], str)
                   for p in self.labels):
            raise _fail("selector.labels", "a mapping of request label name to value (e.g. "
                        "{'tenant': 'acme'})", labels)
        object.__setattr__(self, "methods", tuple(m.upper() if isinstance(m, str) else m
                                                  for m in self.methods))
        if not all(isinstance(r, str) and r.startswith("/") for r in self.routes):
            raise _fail("selector.routes", "route templates starting with '/' (e.g. "
                        "'/items/{item_id}')", self.routes)
        if not all(isinstance(m, str) and _METHOD_RE.fullmatch(m) for m in self.methods):
            raise _fail("selector.methods", "HTTP methods such as GET", self.methods)

    def matches(self, method: str, route: str) -> bool:
        return ((not self.routes or route in self.routes)
                and (not self.methods or method in self.methods))

    def matches_labels(self, labels: tuple[tuple[str, str], ...]) -> bool:
        """Whether a series with these request label values is selected (every selector label
        has its value)."""
        return all(pair in labels for pair in self.labels)


@dataclass(frozen=True)
class SLI:
    """What makes a request good.

    ``availability``: its status does not match ``bad_status`` (a regular expression over the
    three-digit status, ``5..`` by default). ``latency``: it took at most ``threshold_seconds``,
    which must be a bound of the duration histogram's buckets, because only there is the count
    of requests under it exact (between two bounds it would be a guess).
    """

    kind: Literal["availability", "latency"] = "availability"
    bad_status: str = "5.."
    threshold_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("availability", "latency"):
            raise _fail("sli.kind", "'availability' or 'latency'", self.kind)
        try:
            re.compile(self.bad_status)
        except (re.error, TypeError):
            raise _fail("sli.bad_status", "a regular expression over the status, e.g. '5..'",
                        self.bad_status) from None
        if self.kind == "latency":
            t = self.threshold_seconds
            if t is None or not _finite(t) or t <= 0:
                raise _fail("sli.threshold_seconds", "a number of seconds > 0 for a latency SLI",
                            t)
            object.__setattr__(self, "threshold_seconds", float(t))
        elif self.threshold_seconds is not None:
            raise _fail("sli.threshold_seconds", "unset for an availability SLI",
                        self.threshold_seconds)

    def is_good(self, status: int, duration: float) -> bool:
        if self.kind == "latency":
            assert self.threshold_seconds is not None
            return duration <= self.threshold_seconds
        return re.fullmatch(self.bad_status, str(status)) is None


@dataclass(frozen=True)
class SLO:
    """A service level objective, e.g. 99.9 % of requests good over 30 days::

        SLO("checkout-latency", SLI("latency", threshold_seconds=0.25), objective_percent=99,
            selector=Selector(routes=("/checkout",)))
    """

    name: str
    sli: SLI = field(default_factory=SLI)
    objective_percent: float = 99.9
    period_days: float = 30.0
    selector: Selector = field(default_factory=Selector)
    # Where it was declared ("slos.json: slos[2]") when read from a file, for later errors.
    origin: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.fullmatch(self.name) \
                or len(self.name) > MAX_NAME_CHARS:
            raise _fail("name", f"letters, digits, '_' and '-' not starting with a digit, at "
                        f"most {MAX_NAME_CHARS} characters", self.name, owner="SLO")
        owner = f"SLO {self.name!r}"
        o = self.objective_percent
        if not _finite(o) or not 0 < o < 100:
            raise _fail("objective_percent", "a percentage above 0 and below 100 (e.g. 99.9)",
                        o, owner)
        p = self.period_days
        if not _finite(p) or not 0 < p <= 365:
            raise _fail("period_days", "a number of days > 0 and <= 365 (e.g. 30)", p, owner)
        if not self.burn_alerts:
            shortest = math.ceil(MIN_PERIOD_DAYS * 100) / 100
            raise FieldError(
                "period_days", f"must be at least {shortest:g} "
                f"{'day' if shortest == 1 else 'days'}, got {p!r}: a shorter period leaves no "
                f"burn-rate alert (a ticket's long window must fit in the period, and a page "
                f"must not fire on a burn rate under 1)", owner)
        if not isinstance(self.sli, SLI):
            raise _fail("sli", "an SLI", self.sli, owner)
        if not isinstance(self.selector, Selector):
            raise _fail("selector", "a Selector", self.selector, owner)

    def where(self, field_name: str) -> str:
        """How an error names one of its fields: with the file and entry it came from."""
        return (f"{self.origin}.{field_name}" if self.origin
                else f"SLO {self.name!r}: {field_name}")

    @property
    def period_seconds(self) -> float:
        return self.period_days * 86400

    @property
    def burn_alerts(self) -> tuple[BurnAlert, ...]:
        """The workbook's alerts with factors scaled to this SLO's period, without those the
        period is too short for (:attr:`BurnAlert.min_period_seconds`): 28 and 7 days keep all
        four, 3 days the 1h/5m page and both tickets, 1 day the 1d/2h ticket only."""
        period = self.period_seconds
        return tuple(alert.for_period(period) for alert in BURN_ALERTS
                     if period >= alert.min_period_seconds)

    @property
    def error_budget(self) -> float:
        """The fraction of requests allowed to be bad (0.001 for 99.9 %)."""
        return 1 - self.objective_percent / 100

    def check_labels(self, label_names: tuple[str, ...]) -> None:
        """Refuse a selector label that is not a configured request label: it would select
        nothing, for ever."""
        unknown = [name for name, _ in self.selector.labels if name not in label_names]
        if unknown:
            shown = ", ".join(label_names) or "none"
            raise ConfigError(
                f"{self.where('selector.labels')} must name request labels (configured: "
                f"{shown}), got {unknown[0]!r}; add it to MONITORING_HEADER_LABELS or "
                f"metrics.request_labels, or remove it from the selector")

    def check_buckets(self, duration_buckets: tuple[float, ...]) -> None:
        """Refuse a latency threshold that is not one of the duration histogram's bounds."""
        t = self.sli.threshold_seconds
        if self.sli.kind == "latency" and t not in duration_buckets:
            shown = ", ".join(repr(b) for b in duration_buckets)
            # repr, not :g: "got 0.5" for 0.5000000001 would name a bound that is there.
            raise ConfigError(
                f"{self.where('sli.threshold_seconds')} must be one of the duration "
                f"histogram's bucket bounds (metrics.duration_buckets: {shown}), got {t!r}; "
                f"pick one of them or add {t!r} to metrics.duration_buckets")


_SLO_KEYS = {"name", "sli", "objective_percent", "period_days", "selector"}
_SLI_KEYS = {"kind", "bad_status", "threshold_seconds"}
_SELECTOR_KEYS = {"routes", "methods", "labels"}


def _mapping(field_name: str, value: object, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(field_name, "an object", value)
    unknown = sorted(str(k) for k in set(value) - keys)
    if unknown:
        # Escaped (a key may hold a newline) and cut (or a 100 KB key is a 100 KB message).
        listed = ", ".join(unknown).encode("unicode_escape").decode("ascii")
        listed = listed if len(listed) <= 80 else f"{listed[:80]}..."
        raise FieldError(field_name, f"has unknown field(s) {listed}; "
                         f"known: {', '.join(sorted(keys))}")
    return value


def _depth(data: object) -> int:
    """How deeply ``data`` nests lists and objects, counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict)
                                                  else value))
    return deepest


def _entry(i: int, item: object, source: str) -> SLO:
    raw = _mapping("", item, _SLO_KEYS)
    sli = SLI(**_mapping("sli", raw.get("sli", {}), _SLI_KEYS))
    sel = _mapping("selector", raw.get("selector", {}), _SELECTOR_KEYS)
    for key in ("routes", "methods"):
        if key in sel and not isinstance(sel[key], list):
            raise _fail(f"selector.{key}", "a list", sel[key])
    if "labels" in sel and not isinstance(sel["labels"], Mapping):
        raise _fail("selector.labels", "an object of label name to value", sel["labels"])
    selector = Selector(**{k: tuple(v) if k != "labels" else tuple(sorted(v.items()))
                           for k, v in sel.items()})
    kwargs = {k: raw[k] for k in ("objective_percent", "period_days") if k in raw}
    if "name" not in raw:
        raise FieldError("name", "is missing")
    return SLO(raw["name"], sli, selector=selector, origin=f"{source}: slos[{i}]", **kwargs)


def slos_from_data(data: object, source: str = "SLO file") -> tuple[SLO, ...]:
    """SLOs from plain data: ``{"slos": [{"name": ..., "sli": {...}, ...}, ...]}``.

    Every error is a ConfigError naming ``source``, the entry (``slos[i]``) and the field.
    """
    if _depth(data) > MAX_DEPTH:
        raise ConfigError(f"{source}: nests lists and objects deeper than {MAX_DEPTH} levels; "
                          "the SLO schema needs four")
    try:
        top = _mapping("", data, {"slos"})
    except FieldError as exc:
        raise ConfigError(f"{source} {exc.problem}") from None
    items = top.get("slos", [])
    if not isinstance(items, list):
        raise _fail(f"{source}: slos", "a list", items)
    if len(items) > MAX_SLOS:
        raise ConfigError(f"{source}: slos must hold at most {MAX_SLOS} SLOs, got {len(items)}")
    out: list[SLO] = []
    for i, item in enumerate(items):
        try:
            out.append(_entry(i, item, source))
        except FieldError as exc:
            field_name = f".{exc.field}" if exc.field else ""
            raise ConfigError(f"{source}: slos[{i}]{field_name} {exc.problem}") from None
    names = [s.name for s in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: SLO names must be distinct, {', '.join(duplicates)} "
                          "repeated")
    return tuple(out)


def load_slo_file(path: str) -> tuple[SLO, ...]:
    """The SLOs of a JSON file (MONITORING_SLO_FILE)."""
    where = f"MONITORING_SLO_FILE (slo.file) {path!r}"
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"MONITORING_SLO_FILE (slo.file) must be a readable UTF-8 JSON file, "
                          f"got {path!r} ({exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{where} is larger than {MAX_FILE_BYTES} bytes: not an SLO file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"MONITORING_SLO_FILE (slo.file) must be a readable UTF-8 JSON file, "
                          f"got {path!r} (not UTF-8)") from None
    except RecursionError:
        raise ConfigError(f"{where}: nests lists and objects deeper than {MAX_DEPTH} levels; "
                          "the SLO schema needs four") from None
    except ValueError as exc:
        # JSONDecodeError with its position, or an integer past Python's digit limit.
        reason = str(exc)
        reason = reason if len(reason) <= 120 else reason[:120] + "..."
        raise ConfigError(f"{where} is not valid JSON: {reason}") from None
    return slos_from_data(data, source=path)
