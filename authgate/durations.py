"""One grammar for every length of time a person types: a whole number with an optional unit.

`30s`, `5m`, `12h`, `90d`, `2w`, or `3600` (seconds). Spaces around the number and between it
and the unit are allowed (`5 m` was accepted by the identity config). Only ASCII digits and
lowercase units: `M` would read as months to some people, and `-5m`, `1.5h` or `٣h` are typos
that must not quietly become a setting. Settings, `gc --grace`, the identity config, `audit --since`
and `robot --expires` all parse here, so they accept the same things; each caller keeps its own
rule on top (a minimum, a `never`, a unit being required) and names the field in its own error.
"""

from __future__ import annotations

import re
from datetime import timedelta

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The longest `timedelta` holds, so a parsed value never overflows where it is added to a date
#: (dates may still fall out of range: callers adding to `now` catch OverflowError).
MAX_SECONDS = 999_999_999 * 86400
#: More digits than MAX_SECONDS has, checked before `int()` so 5000 digits cost nothing.
_MAX_DIGITS = 15
_GRAMMAR = re.compile(r"([0-9]+)[ \t]*([a-zA-Z]*)")
_EXPECTED = "a whole number with an optional unit s, m, h, d or w (e.g. 3600, 30m, 12h, 90d)"
_EXPECTED_UNIT = "a whole number with a unit s, m, h, d or w (e.g. 30m, 12h, 90d)"


class DurationError(ValueError):
    """The text is not a duration; the message says what was wrong (a ValueError for old callers)."""


def parse_seconds(text: str, *, unit_required: bool = False) -> int:
    """Whole seconds in `text`; a bare number is seconds unless `unit_required` (where it could be a date)."""
    shown = repr(text[:40]) + ("…" if len(text) > 40 else "")
    expected = _EXPECTED_UNIT if unit_required else _EXPECTED
    stripped = text.strip()
    if not stripped:
        raise DurationError(f"empty duration: expected {expected}")
    match = _GRAMMAR.fullmatch(stripped)
    if match is None:
        raise DurationError(f"{shown} is not a duration: expected {expected}")
    digits, unit = match.groups()
    if unit not in UNITS and unit != "":
        raise DurationError(f"{shown}: unknown unit {unit[:10]!r}, use s, m, h, d or w")
    if unit_required and not unit:
        raise DurationError(f"{shown} needs a unit: expected {expected}")
    digits = digits.lstrip("0") or "0"
    seconds = int(digits) * UNITS[unit or "s"] if len(digits) <= _MAX_DIGITS else MAX_SECONDS + 1
    if seconds > MAX_SECONDS:
        raise DurationError(f"{shown} is too long: at most {MAX_SECONDS // UNITS['w']}w")
    return seconds


def parse_duration(text: str, *, unit_required: bool = False) -> timedelta:
    """`parse_seconds` as a timedelta."""
    return timedelta(seconds=parse_seconds(text, unit_required=unit_required))
