"""`type: oidc` in the identity file: people signing in with an OpenID provider (device grant)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from authgate.auth.accounts import NAME_RE
from authgate.identity.base import IdentityConfigError
from authgate.identity.config_checks import ca_file, source_name, timeout

_KEYS = {
    "name", "type", "issuer", "client_id", "client_secret", "client_secret_file", "scopes", "username_claim",
    "groups_claim", "teams", "unmapped_groups", "recheck_interval", "algorithms", "ca_file", "timeout",
}


@dataclass(frozen=True)
class PeopleConfig:
    name: str
    issuer: str
    #: The client registered at the provider for authgate, allowed the device grant and refresh tokens.
    client_id: str
    client_secret: str = field(default="", repr=False)  # a secret: never printed; empty for a public client
    scopes: tuple[str, ...] = ("openid", "offline_access", "profile", "groups")
    #: ID-token claims: the authgate user name (must be a valid name) and the list of groups.
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    teams: tuple[tuple[str, str], ...] = ()
    unmapped_groups: Literal["by_name", "ignore"] = "by_name"
    #: Seconds between re-checks at the provider (with its refresh token) when docker refreshes.
    recheck_interval: int = 300
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    ca_file: Path | None = None
    timeout: float = 10.0


def parse_people(where: str, raw: dict[str, Any], file_dir: Path) -> PeopleConfig:
    from authgate.identity.jwks import ALLOWED_ALGORITHMS

    def fail(key: str, message: str) -> IdentityConfigError:
        return IdentityConfigError(f"{where}.{key}: {message}")

    name = where = source_name(where, raw, "oidc", _KEYS)
    issuer = str(raw.get("issuer", "")).rstrip("/")
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise fail("issuer", f"{issuer!r}: must be an https:// URL")
    client_id = str(raw.get("client_id", ""))
    if not client_id:
        raise fail("client_id", "the client registered at the provider for authgate (device grant, refresh tokens)")
    secret = str(raw.get("client_secret", ""))
    env_name = f"AUTHGATE_IDENTITY_{name.upper().replace('-', '_').replace('.', '_')}_CLIENT_SECRET"
    if env_name in os.environ:
        secret = os.environ[env_name]
    elif raw.get("client_secret_file"):
        path = file_dir / Path(str(raw["client_secret_file"])).expanduser()
        try:
            secret = path.read_text().strip()
        except OSError as exc:
            raise fail("client_secret_file", f"cannot read {path}: {exc.strerror}") from None
    values: dict[str, Any] = {"name": name, "issuer": issuer, "client_id": client_id, "client_secret": secret}
    scopes = raw.get("scopes", list(PeopleConfig.scopes))
    if not isinstance(scopes, list) or "openid" not in scopes or not all(isinstance(s, str) for s in scopes):
        raise fail("scopes", "a list of scopes including openid (and offline_access for refresh tokens)")
    values["scopes"] = tuple(scopes)
    for key in ("username_claim", "groups_claim"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise fail(key, "must be a claim name")
            values[key] = raw[key]
    teams = raw.get("teams", {}) or {}
    if not isinstance(teams, dict) or not all(isinstance(t, str) and NAME_RE.fullmatch(t) for t in teams.values()):
        raise fail("teams", "must map provider group names to valid team names")
    values["teams"] = tuple((str(g), str(t)) for g, t in teams.items())
    unmapped = raw.get("unmapped_groups", "by_name")
    if unmapped not in ("by_name", "ignore"):
        raise fail("unmapped_groups", "must be by_name or ignore")
    values["unmapped_groups"] = unmapped
    recheck = raw.get("recheck_interval", 300)
    if not isinstance(recheck, int) or isinstance(recheck, bool) or not 0 <= recheck <= 86400:
        raise fail("recheck_interval", "whole seconds from 0 to 86400")
    values["recheck_interval"] = recheck
    algorithms = raw.get("algorithms", ["RS256", "ES256"])
    if not isinstance(algorithms, list) or not algorithms or any(a not in ALLOWED_ALGORITHMS for a in algorithms):
        raise fail("algorithms", f"a list among {', '.join(ALLOWED_ALGORITHMS)}")
    values["algorithms"] = tuple(algorithms)
    if raw.get("ca_file"):
        values["ca_file"] = ca_file(where, raw["ca_file"], file_dir)
    values["timeout"] = timeout(where, raw.get("timeout", 10))
    return PeopleConfig(**values)
