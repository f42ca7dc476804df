"""Small parsers for human units in config files and flags (durations like 10m, 1h30m, 15s)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_FACTORS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> float:
    """'90s' / '10m' / '1h30m' / 45 (seconds) -> seconds. Raises ValueError with what is valid."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 10m or 1h30m")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _finite(float(value), value)
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return _finite(float(text), value)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _FACTORS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; expected e.g. 30s, 10m, 1h30m")
    return _finite(total, value)


def _finite(seconds: float, value: object) -> float:
    """NaN, or 400 digits of seconds (infinity as a float), is no duration anything can wait for."""
    if seconds != seconds or seconds == float("inf"):
        raise ValueError(f"{str(value)[:40]!r} is not a finite duration; expected e.g. 30s, 10m, 1h30m")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 0:
        return "-" + format_duration(-seconds)
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"
