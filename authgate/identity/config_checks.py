"""The checks every source in the identity file shares: its name, its settings, a CA file, a timeout.

One place for them, so an LDAP directory, a CI issuer and an OpenID provider refuse the same
mistakes with the same words (`config.py` and `people_config.py` parse the sources).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from authgate.auth.accounts import NAME_RE
from authgate.identity.base import IdentityConfigError
from authgate.identity.local import LOCAL


def fail(where: str, message: str) -> IdentityConfigError:
    return IdentityConfigError(f"{where}: {message}")


def text(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise fail(where, "must be a string")
    return value


def ca_file(where: str, value: Any, file_dir: Path) -> Path:
    """The CA bundle to trust for this source, relative to the identity file; checked now so a typo
    fails at start rather than at the first login."""
    ca = file_dir / Path(text(f"{where}.ca_file", value)).expanduser()
    if not ca.is_file():
        raise fail(f"{where}.ca_file", f"{ca} is not a readable file")
    return ca


def timeout(where: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 60:
        raise fail(f"{where}.timeout", "must be a number of seconds between 0 and 60")
    return float(value)


def source_name(where: str, raw: dict[str, Any], default: str, known: set[str]) -> str:
    """A source's name, checked, after refusing settings its kind does not know: a typo fails the load
    instead of silently leaving a default in place. Later errors are reported under this name."""
    name = text(f"{where}.name", raw.get("name", default))
    if not NAME_RE.fullmatch(name) or name == LOCAL:
        raise fail(f"{where}.name", f"{name!r}: use lower-case letters, digits, . _ - (and not `local`)")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(f"{name}.{unknown[0]}", f"unknown setting (known: {', '.join(sorted(known))})")
    return name
