"""Argument checks shared by every layer: one-line ValueErrors that name the
argument, what was expected and what came."""
from __future__ import annotations

__all__ = ["positive_int", "non_negative"]


def positive_int(name: str, value) -> int:
    """``value`` if it is an int ≥ 1 (not a bool), else a ValueError naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


def non_negative(name: str, value) -> float:
    """``float(value)`` if it is a number ≥ 0, else a ValueError naming ``name``."""
    if not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0; got {value!r}")
    return float(value)
