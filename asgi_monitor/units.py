"""Unit conversions shared by the core and the web layer."""

from __future__ import annotations

__all__ = ["ms"]


def ms(seconds: float | None, decimals: int | None = None) -> float | None:
    """``seconds`` in milliseconds (rounded to ``decimals`` if given); ``None`` stays ``None``."""
    if seconds is None:
        return None
    millis = seconds * 1000.0
    return millis if decimals is None else round(millis, decimals)
