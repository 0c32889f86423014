"""The identity file (`identity:` setting): which sources, in which order, and how to reach them.

Parsed once at start into typed values; every problem is refused with the setting's name
(`corp.bind_dn`) and the file, so a typo never turns into "everybody gets wrong password".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from authgate.auth.accounts import NAME_RE
from authgate.durations import DurationError, parse_seconds
from authgate.identity.base import IdentityConfigError
from authgate.identity.config_checks import ca_file, fail, source_name, text, timeout
from authgate.identity.local import LOCAL
from authgate.identity.people_config import PeopleConfig, parse_people

#: A recursive group search stops here: a directory with a cycle or a very deep tree costs at most
#: this many rounds of searches per login.
MAX_NESTED_DEPTH = 10


@dataclass(frozen=True)
class LdapConfig:
    name: str
    url: str
    #: Service account for search-then-bind; empty means bind as the user with `user_dn_template`.
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)  # a secret: never printed
    user_dn_template: str = ""
    user_base: str = ""
    #: `{username}` is replaced by the escaped login name. Put account-disabled conditions here.
    user_filter: str = "(uid={username})"
    group_base: str = ""
    #: `{dn}` is the user's (or, when nesting, a group's) escaped DN; `{username}` the login name.
    group_filter: str = "(|(member={dn})(uniqueMember={dn}))"
    group_name_attribute: str = "cn"
    #: 0: direct groups only (or AD's in-chain rule in `group_filter`); N: follow groups of groups N levels.
    nested_depth: int = 0
    #: Directory group name -> team; other groups become the team of the same name when `unmapped_groups`
    #: is `by_name` (and the name is a valid team name), else they are ignored.
    teams: tuple[tuple[str, str], ...] = ()
    unmapped_groups: Literal["by_name", "ignore"] = "by_name"
    start_tls: bool = False
    ca_file: Path | None = None
    timeout: float = 5.0
    #: Seconds a successful bind (and the groups found with it) is reused; revocation takes at most this long.
    cache_ttl: int = 60

    @property
    def search_then_bind(self) -> bool:
        return bool(self.bind_dn)


@dataclass(frozen=True)
class WorkloadConfig:
    """An OpenID issuer whose tokens CI jobs present (`docker login -u oidc`, password = the JWT)."""

    name: str
    #: Exactly the token's `iss`; discovery is fetched from `<issuer>/.well-known/openid-configuration`.
    issuer: str
    #: The `aud` the job requests for authgate (GitHub Actions: `audience` of `getIDToken`).
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    ca_file: Path | None = None
    leeway: int = 30
    timeout: float = 5.0
    #: The docker login name that means "the password is a workload token".
    username: str = "oidc"


SourceConfig = LdapConfig | WorkloadConfig | PeopleConfig | Literal["local"]
_WORKLOAD_KEYS = {"name", "type", "issuer", "audience", "algorithms", "ca_file", "leeway", "timeout", "username"}

_LDAP_KEYS = {
    "name", "type", "url", "bind_dn", "bind_password", "bind_password_file", "user_dn_template", "user_base",
    "user_filter", "group_base", "group_filter", "group_name_attribute", "nested_depth", "teams",
    "unmapped_groups", "start_tls", "ca_file", "timeout", "cache_ttl",
}


def _duration(where: str, value: Any) -> int:
    if isinstance(value, bool):  # YAML `yes`: str() would make it "True", not a number
        raise fail(where, f"{value!r} is not a duration (seconds, or 30s, 5m, 1h)")
    try:
        return parse_seconds(str(value))
    except DurationError as exc:
        raise fail(where, str(exc)) from None


def _filter(where: str, value: str, needs: str) -> str:
    if not (value.startswith("(") and value.endswith(")")) or value.count("(") != value.count(")"):
        raise fail(where, f"{value!r} is not an LDAP filter: it must be in parentheses, balanced")
    if needs not in value:
        raise fail(where, f"must contain {needs}, replaced by the escaped value at login")
    try:
        value.format(username="x", dn="x")
    except (KeyError, IndexError, ValueError):
        raise fail(where, "only {username} and {dn} may appear in braces") from None
    return value


def _ldap(where: str, raw: dict[str, Any], file_dir: Path) -> LdapConfig:
    name = where = source_name(where, raw, "ldap", _LDAP_KEYS)
    url = text(f"{where}.url", raw.get("url", ""))
    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise fail(f"{where}.url", f"{url!r}: must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
    values: dict[str, Any] = {"name": name, "url": url}
    for key in ("bind_dn", "user_dn_template", "user_base", "group_base", "group_name_attribute"):
        if key in raw:
            values[key] = text(f"{where}.{key}", raw[key])
    password = raw.get("bind_password", "")
    password_file = raw.get("bind_password_file")
    env_name = f"AUTHGATE_IDENTITY_{name.upper().replace('-', '_').replace('.', '_')}_BIND_PASSWORD"
    if env_name in os.environ:
        password = os.environ[env_name]
    elif password_file:
        path = file_dir / Path(text(f"{where}.bind_password_file", password_file)).expanduser()
        try:
            password = path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise fail(f"{where}.bind_password_file", f"cannot read {path}: {exc.strerror}") from None
    values["bind_password"] = text(f"{where}.bind_password", password)
    if values.get("bind_dn"):
        if not values["bind_password"]:
            raise fail(f"{where}.bind_password", f"bind_dn needs a password (bind_password, bind_password_file "
                        f"or ${env_name})")
        if not values.get("user_base"):
            raise fail(f"{where}.user_base", "search-then-bind (bind_dn) needs the base DN to search users under")
    elif values.get("user_dn_template"):
        template = values["user_dn_template"]
        try:
            template.format(username="x")
        except (KeyError, IndexError, ValueError):
            template = ""
        if "{username}" not in template:
            raise fail(f"{where}.user_dn_template", "must contain {username} (and no other braces), e.g. "
                        "uid={username},ou=people,…")
    else:
        raise fail(f"{where}.bind_dn", "set bind_dn (a service account: search, then bind as the user) or "
                    "user_dn_template (bind as the user directly)")
    if "user_filter" in raw:
        values["user_filter"] = _filter(f"{where}.user_filter", text(f"{where}.user_filter", raw["user_filter"]),
                                        "{username}")
    if "group_filter" in raw:
        values["group_filter"] = _filter(f"{where}.group_filter", text(f"{where}.group_filter", raw["group_filter"]),
                                         "{dn}" if "{username}" not in raw["group_filter"] else "{username}")
    depth = raw.get("nested_depth", 0)
    if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= MAX_NESTED_DEPTH:
        raise fail(f"{where}.nested_depth", f"must be a whole number from 0 to {MAX_NESTED_DEPTH}")
    values["nested_depth"] = depth
    teams = raw.get("teams", {}) or {}
    if not isinstance(teams, dict):
        raise fail(f"{where}.teams", "must map directory group names to team names")
    for group, team in teams.items():
        if not isinstance(team, str) or not NAME_RE.fullmatch(team):
            raise fail(f"{where}.teams.{group}", f"{team!r} is not a valid team name")
    values["teams"] = tuple((str(g), str(t)) for g, t in teams.items())
    unmapped = raw.get("unmapped_groups", "by_name")
    if unmapped not in ("by_name", "ignore"):
        raise fail(f"{where}.unmapped_groups", "must be by_name or ignore")
    values["unmapped_groups"] = unmapped
    start_tls = raw.get("start_tls", False)
    if not isinstance(start_tls, bool):
        raise fail(f"{where}.start_tls", "must be true or false")
    if start_tls and parts.scheme == "ldaps":
        raise fail(f"{where}.start_tls", "ldaps:// is already TLS; use start_tls with ldap:// only")
    values["start_tls"] = start_tls
    if raw.get("ca_file"):
        values["ca_file"] = ca_file(where, raw["ca_file"], file_dir)
    values["timeout"] = timeout(where, raw.get("timeout", 5))
    values["cache_ttl"] = _duration(f"{where}.cache_ttl", raw.get("cache_ttl", 60))
    return LdapConfig(**values)


def _workload(where: str, raw: dict[str, Any], file_dir: Path) -> WorkloadConfig:
    from authgate.identity.jwks import ALLOWED_ALGORITHMS

    name = where = source_name(where, raw, "oidc", _WORKLOAD_KEYS)
    issuer = text(f"{where}.issuer", raw.get("issuer", ""))
    parts = urlsplit(issuer)
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise fail(f"{where}.issuer", f"{issuer!r}: must be an https:// URL (its keys must come over TLS)")
    audience = text(f"{where}.audience", raw.get("audience", ""))
    if not audience:
        raise fail(f"{where}.audience", "set the audience the CI job requests its token for (e.g. the registry URL)")
    algorithms = raw.get("algorithms", ["RS256", "ES256"])
    if not isinstance(algorithms, list) or not algorithms or any(a not in ALLOWED_ALGORITHMS for a in algorithms):
        raise fail(f"{where}.algorithms", f"a list among {', '.join(ALLOWED_ALGORITHMS)} (never none or HS*)")
    values: dict[str, Any] = {"name": name, "issuer": issuer.rstrip("/"), "audience": audience,
                              "algorithms": tuple(algorithms)}
    if raw.get("ca_file"):
        values["ca_file"] = ca_file(where, raw["ca_file"], file_dir)
    leeway = raw.get("leeway", 30)
    if not isinstance(leeway, int) or isinstance(leeway, bool) or not 0 <= leeway <= 300:
        raise fail(f"{where}.leeway", "must be whole seconds from 0 to 300")
    values["leeway"] = leeway
    values["timeout"] = timeout(where, raw.get("timeout", 5))
    username = text(f"{where}.username", raw.get("username", "oidc"))
    if not NAME_RE.fullmatch(username):
        raise fail(f"{where}.username", f"{username!r} is not a valid login name")
    values["username"] = username
    return WorkloadConfig(**values)


def parse_identity(data: Any, origin: str = "identity", file_dir: Path = Path(".")) -> list[SourceConfig]:
    """The sources, in order. `local` must come first when present: a name in the local database
    is always that local account, for logins and for the tokens it was given."""
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list) or not data["sources"]:
        raise fail(origin, "must be a mapping with `sources:`, a list such as [local, {type: ldap, …}]")
    unknown = sorted(set(data) - {"sources"})
    if unknown:
        raise fail(f"{origin}: {unknown[0]}", "unknown setting (only `sources`)")
    sources: list[SourceConfig] = []
    names: set[str] = set()
    for index, entry in enumerate(data["sources"]):
        where = f"{origin}: sources[{index}]"
        if entry == LOCAL or (isinstance(entry, dict) and entry.get("type") == LOCAL and len(entry) == 1):
            if index != 0:
                raise fail(where, "local must be the first source (a local account always wins its name)")
            sources.append(LOCAL)
            names.add(LOCAL)
            continue
        parsers: dict[str, Callable[[str, dict[str, Any], Path], LdapConfig | WorkloadConfig | PeopleConfig]] = {
            "ldap": _ldap, "oidc_workload": _workload, "oidc": parse_people}
        if not isinstance(entry, dict) or entry.get("type") not in parsers:
            raise fail(f"{where}.type", "each source is `local` or a mapping with `type:` ldap, oidc_workload or oidc")
        try:
            config: LdapConfig | WorkloadConfig | PeopleConfig = parsers[entry["type"]](
                f"sources[{index}]", entry, file_dir)
        except IdentityConfigError as exc:
            raise IdentityConfigError(f"{origin}: {exc}") from None
        if config.name in names:
            raise fail(f"{where}.name", f"two sources are named {config.name!r}; give each its own name")
        names.add(config.name)
        sources.append(config)
    return sources


def load_identity(path: Path | None) -> list[SourceConfig]:
    """The configured chain, or just the local database when no identity file is set."""
    if path is None:
        return [LOCAL]
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise IdentityConfigError(f"identity: cannot read {path}: {exc}") from None
    return parse_identity(data, str(path), path.parent)
