"""What the admin commands tell about the data directory they work on, and how they fail there.

An admin command run in the wrong directory used to create a fresh, empty `./authgate-data` and
report success ("created user frank") while the running server never saw frank. So: a command that
creates the database says so, mutating commands name where they wrote, and a directory this user
may not write is one line (which path, which user, how to fix) instead of a traceback.
"""

from __future__ import annotations

import os
import pwd
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from authgate.settings import Settings

#: Written by `authgate serve` at start: the address it announced, so `user add` can print the
#: `docker login` line for the server that really runs (its `--host`/`--port` are not in the
#: admin command's settings).
SERVED_URL_FILE = "served-url"
#: Addresses that mean "every interface" to the listening socket.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class DataDirError(Exception):
    """The data directory (or a file in it) cannot be used by this user; the message says how to fix it."""


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.database)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def location(settings: Settings) -> str:
    """Where account changes land: the data directory, or the database URL without its password."""
    if _sqlite_file(settings) is not None and not settings.database_url:
        return str(settings.data.resolve())
    return make_url(settings.database).render_as_string(hide_password=True)


def database_missing(settings: Settings) -> bool:
    """True when the SQLite database does not exist yet, or cannot even be looked at (a server
    database is assumed to exist)."""
    path = _sqlite_file(settings)
    try:
        return path is not None and not path.exists()
    except OSError:
        return True


def announce_new_database(settings: Settings) -> None:
    """Say on stderr that this command is about to create a new SQLite database: almost always a
    command run from another directory than `authgate serve`, so say how to point it at the real one."""
    path = _sqlite_file(settings)
    if path is None or path.exists():
        return
    print(f"authgate: no database in {path.parent.resolve()}: creating a new, empty one. If `authgate serve` "
          "keeps its data elsewhere, run this command in that directory or set AUTHGATE_DATA.", file=sys.stderr)


def _user_text(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _owner(path: Path) -> tuple[Path, int] | None:
    """The deepest existing path at or above `path` this user can stat, and its owner."""
    for candidate in (path, *path.parents):
        try:
            return candidate, candidate.stat().st_uid
        except OSError:
            continue
    return None


def permission_message(path: str | os.PathLike[str] | None) -> str:
    """`permission denied on PATH …`: who owns it, who we are, and the two ways out."""
    me = os.geteuid()
    target = Path(path) if path else Path(".")
    found = _owner(target)
    if found is None or found[1] == me:
        return (f"permission denied on {target} (authgate runs as {_user_text(me)}): check the modes of it and "
                "of the directories above it")
    owned, owner = found
    directory = owned if owned.is_dir() else owned.parent
    return (f"permission denied on {target} ({owned} is owned by {_user_text(owner)}; authgate runs as "
            f"{_user_text(me)}): run authgate as that user, or give this one the directory: "
            f"sudo chown -R {me} {directory}")


def check_writable(settings: Settings) -> None:
    """Refuse early, in one line, when this user cannot use the data directory or its database file."""
    data = settings.data
    candidates = [data, data / "authgate.db", data / "keys"]
    sqlite = _sqlite_file(settings)
    if sqlite is not None:
        candidates += [sqlite.parent, sqlite]
    for path in candidates:
        try:
            exists = path.exists()
        except PermissionError:  # a directory above it may not be searched
            raise DataDirError(permission_message(path)) from None
        if not exists:
            if path.parent.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
                raise DataDirError(permission_message(path.parent))
            continue
        mode = os.R_OK | os.W_OK | (os.X_OK if path.is_dir() else 0)
        if not os.access(path, mode):
            raise DataDirError(permission_message(path))


def remember_served_url(settings: Settings) -> None:
    """Record the URL `authgate serve` announces (and, on a second line, a wildcard address it
    listens on with no public URL); losing it only makes `user add` less precise."""
    wildcard = f"listening-on {settings.host}\n" if localhost_only_realm(settings) else ""
    try:
        fd = os.open(settings.data / SERVED_URL_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(settings.url + "\n" + wildcard)
    except OSError:
        pass


def localhost_only_realm(settings: Settings) -> bool:
    """Listening on every address with no public URL: `settings.url`, hence the token realm, says
    localhost, which only this machine reaches (a guessed host name could be as wrong elsewhere)."""
    return settings.host in WILDCARD_HOSTS and not settings.public_url and not settings.registry_url


@dataclass(frozen=True)
class LoginAddress:
    """`host:port` for `docker login`, and a caveat when it works on this machine only."""

    host: str
    caveat: str = ""


def login_address(settings: Settings, tls_aware_url: str) -> LoginAddress:
    """The registry in token-server mode, the configured public URL, else what the last `authgate serve`
    on this data directory announced, else what these settings would serve (`tls_aware_url`)."""
    url = settings.registry_url or settings.public_url
    listening = settings.host if not url and localhost_only_realm(settings) else ""
    if not url:
        try:
            lines = (settings.data / SERVED_URL_FILE).read_text().splitlines()
        except OSError:
            lines = []
        if lines:
            url = lines[0].strip()
            listening = next((line.split(" ", 1)[1] for line in lines[1:] if line.startswith("listening-on ")), "")
    url = url or tls_aware_url
    host = url.split("://", 1)[-1].rstrip("/")
    if not listening or not host.startswith("localhost:"):
        return LoginAddress(host)
    port = host.rsplit(":", 1)[1]
    scheme = url.split("://", 1)[0]
    return LoginAddress(host, (
        f"{host} works on this machine only. authgate listens on every address ({listening}) but has no "
        f"public_url, so the token realm docker is sent to is {scheme}://{host}/token, which other machines "
        f"cannot reach. For them, set public_url to the address they use (e.g. AUTHGATE_PUBLIC_URL="
        f"{scheme}://{socket.gethostname()}:{port}), restart authgate, and log in to that address."))
