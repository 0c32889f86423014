"""Blocking LDAP operations with python-ldap, run in worker threads by `ldap_source`.

python-ldap is the binding to OpenLDAP's own libldap, maintained by the python-ldap project and
used by Django, Odoo and most Python LDAP deployments; its calls block, so each one runs in a
worker thread (bounded per source). One connection per login: with the bind cache in front,
logins reach the directory at most once per `cache_ttl` per user, and no shared connection can
be left half-bound by a failed user bind.

Every value put into a filter or DN is escaped (RFC 4515 / RFC 4514). Empty passwords never
reach the directory: an empty password is an "unauthenticated bind" (RFC 4513 §5.1.2) that many
servers accept as anonymous success.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import socket
from urllib.parse import urlsplit

import ldap
import ldap.dn
import ldap.filter
from ldap.ldapobject import LDAPObject

from authgate.identity.base import SourceUnavailable
from authgate.identity.config import LdapConfig

#: Results beyond this per search are not read (a user filter matching half the directory is a bug).
MAX_RESULTS = 1000
_DOWN = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR)


class WrongPassword(Exception):
    """The directory refused the user's own bind (wrong password, or no such DN in bind mode)."""


@dataclass(frozen=True, slots=True)
class Group:
    dn: str
    name: str
    #: Names of the groups that led here when found by nesting, outermost last; () for direct groups.
    through: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    dn: str
    groups: tuple[Group, ...]


def _describe(exc: ldap.LDAPError) -> str:
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    text = str(info.get("desc", type(exc).__name__))
    if info.get("info"):
        text += f" ({info['info']})"
    return text


class Directory:
    def __init__(self, config: LdapConfig) -> None:
        self.config = config

    # -- connections ------------------------------------------------------------------------------
    def connect(self) -> LDAPObject:
        config = self.config
        try:
            conn = ldap.initialize(config.url)
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
            conn.set_option(ldap.OPT_REFERRALS, 0)  # AD hands out referrals an anonymous chase would fail
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, config.timeout)
            conn.set_option(ldap.OPT_TIMEOUT, config.timeout)
            conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
            if config.ca_file is not None:
                conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(config.ca_file))
            conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # must come last: applies the TLS options above
        except ldap.LDAPError as exc:
            raise SourceUnavailable(f"{config.url}: {_describe(exc)}") from None
        if config.start_tls:
            try:
                conn.start_tls_s()
            except ldap.LDAPError as exc:
                if not self._tcp_reachable():
                    raise SourceUnavailable(f"cannot reach {config.url}: {_describe(exc)}") from None
                raise SourceUnavailable(
                    f"StartTLS with {config.url} failed: the server's certificate is not signed by ca_file "
                    "(or not for this host name), or it offers no StartTLS") from None
        return conn

    def _tcp_reachable(self) -> bool:
        """Whether the server accepts TCP at all: tells "down" from "TLS refused" (libldap says neither)."""
        parts = urlsplit(self.config.url)
        port = parts.port or (636 if parts.scheme == "ldaps" else 389)
        try:
            socket.create_connection((parts.hostname or "", port), timeout=self.config.timeout).close()
        except OSError:
            return False
        return True

    def _unreachable(self, exc: ldap.LDAPError) -> str:
        if self.config.url.startswith("ldaps:") and self._tcp_reachable():
            return (f"TLS with {self.config.url} failed: the server's certificate is not signed by ca_file "
                    "(or not for this host name)")
        return f"cannot reach {self.config.url}: {_describe(exc)}"

    def _service_bind(self, conn: LDAPObject) -> None:
        try:
            conn.simple_bind_s(self.config.bind_dn, self.config.bind_password)
        except ldap.INVALID_CREDENTIALS:
            raise SourceUnavailable(f"{self.config.url} refused the service account bind_dn "
                                    f"{self.config.bind_dn!r}: check bind_password") from None

    @contextmanager
    def _session(self) -> Iterator[LDAPObject]:
        """A connection for one question, always unbound after; a directory that is down or answers with
        an error becomes `SourceUnavailable` ("try again later"), never a wrong password."""
        conn = self.connect()
        try:
            yield conn
        except _DOWN as exc:
            raise SourceUnavailable(self._unreachable(exc)) from None
        except ldap.LDAPError as exc:
            raise SourceUnavailable(f"{self.config.url}: {_describe(exc)}") from None
        finally:
            conn.unbind_s()

    @staticmethod
    def _bind_as(conn: LDAPObject, dn: str, password: str) -> None:
        try:
            conn.simple_bind_s(dn, password)
        except (ldap.INVALID_CREDENTIALS, ldap.UNWILLING_TO_PERFORM):  # UNWILLING: an empty password
            raise WrongPassword() from None

    # -- searches ---------------------------------------------------------------------------------
    def _search(self, conn: LDAPObject, base: str, scope: int, filterstr: str,
                attrs: list[str]) -> list[tuple[str, dict[str, list[bytes]]]]:
        try:
            results = conn.search_ext_s(base, scope, filterstr, attrs, sizelimit=MAX_RESULTS)
        except ldap.NO_SUCH_OBJECT:
            return []
        except ldap.SIZELIMIT_EXCEEDED:
            raise SourceUnavailable(f"a search under {base!r} matched more than {MAX_RESULTS} entries: "
                                    "narrow the filter") from None
        return [(dn, entry) for dn, entry in results if dn is not None]  # dn None: a referral

    def _find_user(self, conn: LDAPObject, username: str) -> str | None:
        config = self.config
        filterstr = config.user_filter.format(username=ldap.filter.escape_filter_chars(username))
        if config.search_then_bind:
            found = self._search(conn, config.user_base, ldap.SCOPE_SUBTREE, filterstr, ["1.1"])
        else:  # bind mode: the user's own entry must still pass the filter (disabled accounts do not)
            found = self._search(conn, self.user_dn(username), ldap.SCOPE_BASE, filterstr, ["1.1"])
        if len(found) > 1:
            raise SourceUnavailable(f"user_filter matches {len(found)} entries for one name: make it unique")
        return found[0][0] if found else None

    def user_dn(self, username: str) -> str:
        return self.config.user_dn_template.format(username=ldap.dn.escape_dn_chars(username))

    def _groups(self, conn: LDAPObject, user_dn: str, username: str) -> tuple[Group, ...]:
        """Direct groups, then (up to `nested_depth` rounds) the groups those groups are members of."""
        config = self.config
        if not config.group_base:
            return ()
        attr = config.group_name_attribute
        found: dict[str, Group] = {}
        frontier: list[tuple[str, tuple[str, ...]]] = [(user_dn, ())]
        for depth in range(config.nested_depth + 1):
            following: list[tuple[str, tuple[str, ...]]] = []
            for member_dn, through in frontier:
                filterstr = config.group_filter.format(dn=ldap.filter.escape_filter_chars(member_dn),
                                                       username=ldap.filter.escape_filter_chars(username))
                for dn, entry in self._search(conn, config.group_base, ldap.SCOPE_SUBTREE, filterstr, [attr]):
                    key = dn.lower()
                    if key in found:
                        continue  # seen (cycles end here)
                    values = entry.get(attr) or [ldap.dn.str2dn(dn)[0][0][1].encode()]
                    group = Group(dn, values[0].decode("utf-8", "replace"), through)
                    found[key] = group
                    following.append((dn, (group.name, *through)))
            frontier = following
            if not frontier:
                break
        return tuple(found.values())

    # -- what the source asks ---------------------------------------------------------------------
    def authenticate(self, username: str, password: str) -> DirectoryUser | None:
        """None: no such (enabled) user. Raises `WrongPassword`, or `SourceUnavailable`."""
        with self._session() as conn:
            if self.config.search_then_bind:
                self._service_bind(conn)
                dn = self._find_user(conn, username)
                if dn is None:
                    return None
                user_conn = self.connect()
                try:
                    self._bind_as(user_conn, dn, password)
                finally:
                    user_conn.unbind_s()
                return DirectoryUser(dn, self._groups(conn, dn, username))
            dn = self.user_dn(username)
            self._bind_as(conn, dn, password)
            if self._find_user(conn, username) is None:
                return None
            return DirectoryUser(dn, self._groups(conn, dn, username))

    def lookup(self, username: str) -> DirectoryUser | None:
        """With the service account: the user and groups now, without the password."""
        with self._session() as conn:
            self._service_bind(conn)
            dn = self._find_user(conn, username)
            return None if dn is None else DirectoryUser(dn, self._groups(conn, dn, username))

    def check(self) -> list[str]:
        """Problems with the configuration found by asking the server, as `SETTING: message` lines."""
        config = self.config
        try:
            conn = self.connect()
        except SourceUnavailable as exc:
            return [f"{'start_tls' if str(exc).startswith('StartTLS') else 'url'}: {exc}"]
        problems: list[str] = []
        try:
            if config.search_then_bind:
                try:
                    self._service_bind(conn)
                except SourceUnavailable as exc:
                    return [f"bind_password: {exc}"]
                except _DOWN as exc:
                    return [f"{'ca_file' if 'TLS' in self._unreachable(exc) else 'url'}: {self._unreachable(exc)}"]
                for key in ("user_base", "group_base"):
                    base = getattr(config, key)
                    if base and not self._search(conn, base, ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"]):
                        problems.append(f"{key}: {base!r} does not exist in the directory (or bind_dn cannot read it)")
            else:
                conn.search_ext_s("", ldap.SCOPE_BASE, "(objectClass=*)", ["1.1"])  # the root DSE: is it talking?
        except _DOWN as exc:
            message = self._unreachable(exc)
            problems.append(f"{'ca_file' if message.startswith('TLS') else 'url'}: {message}")
        except ldap.LDAPError:
            pass  # reachable; an anonymous read of the root DSE may be refused, which is fine
        finally:
            conn.unbind_s()
        return problems
