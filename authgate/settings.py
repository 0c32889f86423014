"""Typed settings: defaults, then a YAML config file, then `AUTHGATE_*` environment variables.

Validated once at start; a bad value stops the process with a message naming the setting and
where it came from. Field names are the config-file keys; `AUTHGATE_<NAME>` overrides each.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import logging
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from authgate.durations import MAX_SECONDS, parse_seconds

#: `AUTHGATE_*` names that are not settings but are read elsewhere (the config file's path; the tests' own).
_OTHER_ENV = ("AUTHGATE_CONFIG",)
_OTHER_ENV_PREFIXES = ("AUTHGATE_TEST_",)

log = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    #: Directory for the SQLite database, signing keys, TLS material and the embedded blob store.
    data: Path = Path("authgate-data")
    #: SQLAlchemy URL; default SQLite in `data`. PostgreSQL: `postgresql+psycopg://user@host/db`.
    database_url: str = field(default="", repr=False)  # may hold a password: never printed
    host: str = "127.0.0.1"
    port: int = 5000
    #: The URL clients use to reach authgate; the token realm is `<public_url>/token`.
    public_url: str = ""
    #: The token `aud` / registry `service` name.
    service: str = "authgate"
    #: The token `iss`; must equal the registry's `auth.token.issuer` in token-server mode.
    issuer: str = "authgate"
    token_ttl: int = 300
    refresh_token_ttl: int = 90 * 86400
    signing_algorithm: Literal["ES256", "RS256"] = "ES256"
    #: bcrypt cost for new password hashes (12 ≈ 280 ms here); successful checks are cached briefly.
    bcrypt_rounds: int = 12
    #: Seconds a successful password check is remembered (keyed by an HMAC, never the password); 0 disables.
    password_cache_ttl: int = 60
    #: Directory of policy YAML files; empty means the built-in default (own namespace only).
    policies: Path | None = None
    #: Where a server reads its policy: `files` (the `policies` directory, reloaded when it changes)
    #: or `database` (the newest `authgate policy push`, the same on every replica; docs/scale-out.md).
    policy_source: Literal["files", "database"] = "files"
    #: Token-server mode: the URL of the registry (`auth: token`) docker pushes to and pulls from.
    #: authgate then serves `/token` only (no `/v2/` of its own) and points users at this address.
    registry_url: str = ""
    #: YAML file listing the identity sources in order (local database, LDAP; docs/identity.md).
    #: Empty: the local database only.
    identity: Path | None = None
    #: Gateway mode: the upstream registry URL. Empty means the embedded store.
    upstream: str = ""
    upstream_username: str = ""
    upstream_password: str = field(default="", repr=False)  # a secret: never printed
    #: How authgate authenticates to the upstream: `none` (private network), `basic`
    #: (upstream_username/password), `token` (a bearer token authgate signs for itself, for an
    #: upstream in `auth: token` mode trusting authgate's certificate). Empty: basic if a
    #: username is set, else none.
    upstream_auth: Literal["", "none", "basic", "token"] = ""
    #: The `aud` of tokens authgate mints for the upstream (its `auth.token.service`); default
    #: `<service>-upstream`: never `service`, or every user's own token would work at the upstream.
    upstream_service: str = ""
    #: Redirects the upstream gives for blob downloads (object storage): `follow` streams the
    #: target through authgate; `pass` hands the redirect to the client.
    upstream_redirects: Literal["follow", "pass"] = "follow"
    #: Seconds to open a connection to the upstream, and to wait for each read or write.
    upstream_connect_timeout: float = 5.0
    upstream_timeout: float = 60.0
    #: Seconds between background health checks of the upstream (feeds `/readyz`).
    upstream_health_interval: float = 10.0
    upstream_max_connections: int = 100
    #: Upstream requests one user (or one anonymous address) may have in flight at once; more wait
    #: briefly, then get 429, so one user cannot hold every upstream connection.
    upstream_max_per_user: int = 25
    #: CA bundle to verify an https upstream; empty uses the system store.
    upstream_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Where the embedded registry keeps blobs, manifests and tags: `filesystem` (the data dir) or
    #: `s3` (a bucket every replica shares; see docs/scale-out.md). Credentials come the usual AWS way:
    #: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile (`s3_profile`), or an instance role.
    storage: Literal["filesystem", "s3"] = "filesystem"
    #: S3 endpoint URL (SeaweedFS, MinIO, Ceph...); empty means AWS itself.
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    #: Prefix of every key authgate writes, e.g. `registry/` to share a bucket.
    s3_prefix: str = ""
    #: A named profile from ~/.aws/credentials and ~/.aws/config; empty uses the default chain.
    s3_profile: str = ""
    #: Blob pulls answer 307 to a presigned URL (valid `s3_redirect_ttl`), so the bytes skip authgate.
    s3_redirect: bool = False
    s3_redirect_ttl: int = 1200
    #: Size of each multipart-upload part: the memory one upload holds (twice this, at most).
    s3_part_size: int = 8 * 1024**2
    #: Seconds to connect to the object store, and to wait for each of its answers.
    s3_timeout: float = 30.0
    max_blob_size: int = 64 * 1024**3
    max_manifest_size: int = 4 * 1024**2
    upload_max_age: int = 86400
    #: Open client connections per process; past it the longest-idle keep-alive one is closed, else 503.
    max_connections: int = 1000
    #: `authgate serve` processes sharing the port (`--workers`); 0: one per core, at most 8 (1 in gateway mode).
    workers: int = 0
    #: Who may read /metrics and /admin/openapi.json: anyone who reaches the port (`open`, for a
    #: scraper on a private network), or admin users only (`admin`, Basic or a bearer token).
    metrics_access: Literal["open", "admin"] = "open"
    #: Addresses of reverse proxies whose X-Forwarded-For (and X-Request-ID) is trusted.
    trusted_proxies: tuple[str, ...] = ()
    audit_pulls: Literal["off", "manifests", "all"] = "off"
    notification_secret: str = field(default="", repr=False)  # a secret: never printed
    webhook_url: str = ""
    #: When set, webhook bodies carry `X-Authgate-Signature: sha256=<HMAC-SHA256 of the body>`.
    webhook_secret: str = field(default="", repr=False)  # a secret: never printed
    log_level: str = "INFO"
    #: `auto`: readable text on a terminal, JSON lines otherwise (containers, systemd, log shippers).
    log_format: Literal["auto", "json", "text"] = "auto"

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data.resolve() / 'authgate.db'}"

    @property
    def url(self) -> str:
        """Public base URL without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert else "http"
        host = "localhost" if self.host in ("127.0.0.1", "0.0.0.0", "::", "::1") else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    @property
    def gateway(self) -> bool:
        return bool(self.upstream)

    @property
    def token_server_only(self) -> bool:
        return bool(self.registry_url)

    @property
    def upstream_audience(self) -> str:
        """The `aud` of tokens authgate mints for the upstream: never one /token gives users."""
        return self.upstream_service or f"{self.service}-upstream"

    @property
    def upstream_auth_mode(self) -> str:
        """`upstream_auth` with the empty default resolved: basic when a username is set, else none."""
        return self.upstream_auth or ("basic" if self.upstream_username else "none")


_SIZE = re.compile(r"([0-9]{1,20}(?:\.[0-9]{1,9})?)[ \t]*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
#: Sizes are stored and compared as signed 64-bit numbers.
_MAX_SIZE = 2**63 - 1
_DURATIONS = ("_ttl", "_age")
#: Lengths of time where 0 means "off"; every other `*_ttl` / `*_age` must be at least a second.
_ZERO_MEANS_OFF = frozenset({"password_cache_ttl"})


def _size(raw: str) -> int:
    """`4096`, `512M`, `1.5G`, `64GiB`: binary units. No sign, no exponent, no `inf`: a typo must not
    become a limit."""
    match = _SIZE.fullmatch(raw.strip())
    if match is None:
        raise ValueError(raw)
    number, unit = match.groups()
    return int(Decimal(number) * _SIZE_UNITS[unit.lower()])


def _check_range(name: str, value: int) -> None:
    """A length of time or a size that cannot mean anything (negative, zero, beyond what is stored)
    is refused here, where the setting and its source are still known, whichever way it was typed
    (a YAML number skips the text grammar)."""
    if name.endswith(_DURATIONS):
        least = 0 if name in _ZERO_MEANS_OFF else 1
        if value < least:
            wanted = "0 (off) or a number of seconds" if least == 0 else "at least 1 second"
            raise ValueError(f"must be {wanted}, got {value}")
        if value > MAX_SECONDS:
            raise ValueError(f"must be at most {MAX_SECONDS} seconds, got {value}")
    elif name.endswith("_size"):
        if value < 1:
            raise ValueError(f"must be a positive number of bytes, got {value}")
        if value > _MAX_SIZE:
            raise ValueError(f"must be at most {_MAX_SIZE} bytes (8E), got {value}")


def _convert(name: str, hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value in (None, ""):
            return None
        return _convert(name, args[0], value)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(i).strip() for i in items if str(i).strip())
    if hint is bool:
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes", "on")
    if hint in (int, float) and isinstance(value, bool):  # YAML's true is an int to Python, not a number
        raise ValueError(f"must be a number, not {str(value).lower()}")
    if hint is float:
        try:
            number = float(value)
        except (ValueError, TypeError):
            raise ValueError(f"must be a number, got {str(value)[:40]!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"must be a finite number, got {str(value)[:40]!r}")
        return number
    if hint is int:
        if isinstance(value, int):
            _check_range(name, value)
            return value
        text = str(value)
        try:
            if name.endswith(_DURATIONS):
                converted = parse_seconds(text)
            elif name.endswith("_size"):
                converted = _size(text)
            else:
                return int(text)
        except ValueError:
            # Not Python's "invalid literal for int() with base 10": say what would be accepted.
            example = ("a number of seconds or an age such as 30m, 12h, 90d" if name.endswith(_DURATIONS)
                       else "a number of bytes or a size such as 512M, 64G" if name.endswith("_size")
                       else "a whole number")
            raise ValueError(f"must be {example}, got {text[:40]!r}") from None
        _check_range(name, converted)
        return converted
    if hint is Path:
        return Path(str(value)).expanduser()
    return str(value)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Defaults < config file (`--config` or `AUTHGATE_CONFIG`) < environment < explicit overrides."""
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(Settings)
    names = {f.name for f in dataclasses.fields(Settings)}
    raw: dict[str, tuple[Any, str]] = {}
    path = config_file or env.get("AUTHGATE_CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path} must be a mapping of setting: value")
        for key, value in loaded.items():
            key = str(key).replace("-", "_")
            if key not in names:
                raise SettingsError(f"{path}: unknown setting {key!r} (known: {', '.join(sorted(names))})")
            raw[key] = (value, str(path))
    _warn_unknown_env(env, names)
    for name in names:
        env_name = f"AUTHGATE_{name.upper()}"
        if env_name in env:
            raw[name] = (env[env_name], env_name)
    for key, value in overrides.items():
        if value is not None:
            raw[key] = (value, f"--{key.replace('_', '-')}")
    values: dict[str, Any] = {}
    for name, (value, source) in raw.items():
        try:
            values[name] = _convert(name, hints[name], value)
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{source}: invalid value for {name}: {exc}") from exc
    settings = Settings(**values)
    _validate(settings)
    return settings


def _warn_unknown_env(env: Mapping[str, str], names: set[str]) -> None:
    """The config file refuses unknown keys; an environment variable cannot be refused (the
    environment holds other programs' variables too), so a misspelled `AUTHGATE_*` is warned."""
    known = {f"AUTHGATE_{n.upper()}" for n in names}
    for env_name in sorted(env):
        if (not env_name.startswith("AUTHGATE_") or env_name in known or env_name in _OTHER_ENV
                or env_name.startswith(_OTHER_ENV_PREFIXES)):
            continue
        close = difflib.get_close_matches(env_name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else " (the settings are listed in authgate/settings.py)"
        log.warning("ignoring %s: not an authgate setting%s", env_name, hint)


def _validate(settings: Settings) -> None:
    if not 0 < settings.port < 65536:
        raise SettingsError(f"port {settings.port} is out of range 1-65535")
    if settings.token_ttl < 60:
        raise SettingsError("token_ttl must be at least 60 seconds (clients treat less as 60)")
    if not 4 <= settings.bcrypt_rounds <= 20:
        raise SettingsError("bcrypt_rounds must be between 4 and 20 (12 is the default)")
    if settings.registry_url and settings.upstream:
        raise SettingsError("registry_url (token-server mode) and upstream (gateway mode) exclude each other: "
                            "set one")
    for name in ("public_url", "upstream", "webhook_url", "registry_url"):
        value = getattr(settings, name)
        if value and urlsplit(value).scheme not in ("http", "https"):
            raise SettingsError(f"{name} must be an http:// or https:// URL, got {value!r}")
    if settings.upstream_auth == "basic" and not settings.upstream_username:
        raise SettingsError("upstream_auth basic needs upstream_username and upstream_password")
    for name in ("upstream_connect_timeout", "upstream_timeout", "upstream_health_interval"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"{name} must be a positive number of seconds")
    if settings.max_connections < 1:
        raise SettingsError("max_connections must be at least 1")
    if settings.workers < 0:
        raise SettingsError("workers must be 0 (one per core) or a number of processes")
    if settings.upstream_max_connections < 1 or settings.upstream_max_per_user < 1:
        raise SettingsError("upstream_max_connections and upstream_max_per_user must be at least 1")
    if settings.upstream_service and settings.upstream_service == settings.service:
        raise SettingsError(f"upstream_service must differ from service ({settings.service!r}): the upstream "
                            "would accept the token any user gets from /token; leave it empty for "
                            f"{settings.service}-upstream")
    _validate_s3(settings)
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise SettingsError("tls_cert and tls_key must be set together")
    for proxy in settings.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            raise SettingsError(f"trusted_proxies: {exc}") from exc


def _validate_s3(settings: Settings) -> None:
    if settings.storage != "s3":
        return
    if settings.gateway:
        raise SettingsError("storage s3 is for the embedded registry; in gateway mode the upstream stores the blobs")
    if not settings.s3_bucket:
        raise SettingsError("storage s3 needs s3_bucket (AUTHGATE_S3_BUCKET)")
    if settings.s3_endpoint and urlsplit(settings.s3_endpoint).scheme not in ("http", "https"):
        raise SettingsError(f"s3_endpoint must be an http:// or https:// URL, got {settings.s3_endpoint!r}")
    if not 5 * 1024**2 <= settings.s3_part_size <= 1024**3:
        raise SettingsError("s3_part_size must be between 5M (the S3 minimum) and 1G")
    if settings.max_blob_size > 10_000 * settings.s3_part_size:
        raise SettingsError(f"max_blob_size exceeds 10,000 parts of s3_part_size ({settings.s3_part_size} bytes),"
                            " the S3 limit of a multipart upload: raise s3_part_size")
    if settings.s3_timeout <= 0:
        raise SettingsError("s3_timeout must be a positive number of seconds")
    if settings.s3_redirect and settings.s3_redirect_ttl > 7 * 86400:
        raise SettingsError("s3_redirect_ttl must be at most 7d: S3 refuses presigned URLs valid for longer")
