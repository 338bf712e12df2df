"""Unit conversions shared by the core and the web layer."""

from __future__ import annotations

__all__ = ["duration_label", "ms"]


def ms(seconds: float | None, decimals: int | None = None) -> float | None:
    """``seconds`` in milliseconds (rounded to ``decimals`` if given); ``None`` stays ``None``."""
    if seconds is None:
        return None
    millis = seconds * 1000.0
    return millis if decimals is None else round(millis, decimals)


def duration_label(seconds: float) -> str:
    """A duration in the unit people say: "0.5 s", "30 s", "90 s", "15 min", "90 min", "2 h 30 min"
    (never "0.5 min")."""
    if seconds < 120 or round(seconds) % 60:
        return f"{seconds:.3g} s" if seconds < 120 else f"{round(seconds)} s"
    minutes = round(seconds) // 60
    if minutes < 60 or minutes % 60 and minutes < 120:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h" if not rest else f"{hours} h {rest} min"
