"""A throwaway OpenLDAP server (Debian `slapd`) on loopback: plain LDAP (StartTLS) and LDAPS with a test CA.

The directory (dc=example,dc=test):
  ou=people:   alice (in backend), carol (in backend-oncall, a group inside backend: nested),
               dave (in frontend), erin (in backend, but disabled: shadowExpire 1),
               "Zed Admin" (uid zed, in "Platform Admins", mapped to a team by the config)
  ou=groups:   backend (alice, erin, cn=backend-oncall), backend-oncall (carol), frontend (dave),
               Platform Admins (zed)
  ou=services: cn=authgate, the service account for search-then-bind
Every password is `NAME-pw` (service account: `service-pw`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from authgate.tls.certs import issue_ca, issue_server, parse_host
from tests.support.processes import Daemon, free_port, missing_component, require

SUFFIX = "dc=example,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
ADMIN_PASSWORD = "admin-pw"
SERVICE_DN = f"cn=authgate,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-pw"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
#: The filter that keeps disabled accounts (shadowExpire 1, the nss-ldap convention) out.
USER_FILTER = "(&(objectClass=inetOrgPerson)(uid={username})(!(shadowExpire=1)))"

_USERS = {"alice": {}, "carol": {}, "dave": {}, "erin": {"shadowExpire": "1"}, "zed": {}}
_GROUPS = {
    "backend": ["uid=alice", "uid=erin", "cn=backend-oncall"],
    "backend-oncall": ["uid=carol"],
    "frontend": ["uid=dave"],
    "Platform Admins": ["uid=zed"],
}


def _tool(name: str) -> str:
    """slapd and slapadd live in /usr/sbin, which a non-login PATH may lack."""
    return shutil.which(name) or f"/usr/sbin/{name}"


def user_dn(name: str) -> str:
    return f"uid={name},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def _member_dn(ref: str) -> str:
    kind, _, name = ref.partition("=")
    return user_dn(name) if kind == "uid" else group_dn(name)


def _ldif() -> str:
    parts = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
        *(f"dn: ou={ou},{SUFFIX}\nobjectClass: organizationalUnit\nou: {ou}\n" for ou in ("people", "groups", "services")),
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: authgate\n"
        f"userPassword: {SERVICE_PASSWORD}\n",
    ]
    for name, extra in _USERS.items():
        lines = [f"dn: {user_dn(name)}", "objectClass: inetOrgPerson", "objectClass: shadowAccount", f"uid: {name}",
                 f"cn: {name.title()}", f"sn: {name.title()}", f"userPassword: {name}-pw"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        parts.append("\n".join(lines) + "\n")
    for name, members in _GROUPS.items():
        lines = [f"dn: {group_dn(name)}", "objectClass: groupOfNames", f"cn: {name}"]
        lines += [f"member: {_member_dn(m)}" for m in members]
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


class Slapd:
    """slapd with `ldap://127.0.0.1:port` (StartTLS offered) and `ldaps://127.0.0.1:tls_port`."""

    def __init__(self, workdir: Path) -> None:
        if not all(Path(_tool(c)).exists() for c in ("slapd", "slapadd")):
            missing_component("slapd not installed (Debian slapd)")
        require("ldapsearch", "ldapmodify")
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.tls_url = f"ldaps://127.0.0.1:{self.tls_port}"
        self.ca_file = workdir / "ca.crt"
        self._write_tls()
        db = workdir / "db"
        db.mkdir(exist_ok=True)
        self.config = workdir / "slapd.conf"
        modules = Path("/usr/lib/ldap")
        self.config.write_text("\n".join([
            *(f"include /etc/ldap/schema/{s}.schema" for s in ("core", "cosine", "nis", "inetorgperson")),
            f"modulepath {modules}", "moduleload back_mdb",
            f"pidfile {workdir / 'slapd.pid'}",
            f"TLSCACertificateFile {self.ca_file}",
            f"TLSCertificateFile {workdir / 'server.crt'}",
            f"TLSCertificateKeyFile {workdir / 'server.key'}",
            "database mdb", f'suffix "{SUFFIX}"', f'rootdn "{ADMIN_DN}"', f"rootpw {ADMIN_PASSWORD}",
            f"directory {db}", "maxsize 10485760",
            "access to attrs=userPassword by self read by anonymous auth by * none",
            "access to * by users read by * none",
            "",
        ]))
        ldif = workdir / "seed.ldif"
        ldif.write_text(_ldif())
        subprocess.run([_tool("slapadd"), "-f", str(self.config), "-l", str(ldif)], check=True, capture_output=True)
        self.daemon: Daemon | None = None
        self.start()

    def _write_tls(self) -> None:
        ca = issue_ca("slapd test")
        server = issue_server(ca, [parse_host("localhost"), parse_host("127.0.0.1")])
        self.ca_file.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
        (self.workdir / "server.crt").write_bytes(server.certificate.public_bytes(serialization.Encoding.PEM))
        (self.workdir / "server.key").write_bytes(server.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        self.server_ca = ca

    def start(self) -> None:
        urls = f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.tls_port}/"
        self.daemon = Daemon([_tool("slapd"), "-d", "0", "-h", urls, "-f", str(self.config)], self.workdir / "slapd.log")
        self.daemon.wait_until(lambda: self.search(f"(uid=alice)").returncode == 0, "slapd", 30)

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None

    def search(self, filterstr: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ldapsearch", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD, "-b", SUFFIX,
                               filterstr], capture_output=True, text=True, timeout=30)

    def modify(self, ldif: str) -> None:
        subprocess.run(["ldapmodify", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", ADMIN_PASSWORD], input=ldif,
                       check=True, capture_output=True, text=True, timeout=30)

    def remove_member(self, group: str, user: str) -> None:
        self.modify(f"dn: {group_dn(group)}\nchangetype: modify\ndelete: member\nmember: {user_dn(user)}\n")

    def add_member(self, group: str, user: str) -> None:
        self.modify(f"dn: {group_dn(group)}\nchangetype: modify\nadd: member\nmember: {user_dn(user)}\n")

    def disable(self, user: str) -> None:
        self.modify(f"dn: {user_dn(user)}\nchangetype: modify\nreplace: shadowExpire\nshadowExpire: 1\n")

    def identity_file(self, path: Path, mode: str = "search", **extra: object) -> Path:
        """An identity file: local first, then this directory (`search`: search-then-bind over
        StartTLS; `bind`: bind as the user over LDAPS), with nested groups two levels deep."""
        import yaml

        source: dict[str, object] = {
            "type": "ldap", "name": "corp", "user_base": PEOPLE, "user_filter": USER_FILTER,
            "group_base": GROUPS, "group_filter": "(member={dn})", "nested_depth": 2,
            "teams": {"Platform Admins": "admins"}, "ca_file": str(self.ca_file), "cache_ttl": 2,
        }
        if mode == "search":
            source.update(url=self.url, start_tls=True, bind_dn=SERVICE_DN, bind_password=SERVICE_PASSWORD)
        else:
            source.update(url=self.tls_url, user_dn_template=f"uid={{username}},{PEOPLE}")
        source.update(extra)
        path.write_text(yaml.safe_dump({"sources": ["local", source]}, sort_keys=False))
        return path
