"""The TLS files in the data dir (`tls/ca.crt`, `ca.key`, `server.crt`, `server.key`): written
atomically, keys 0600, and read back with their consistency checked."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authgate.tls.certs import GeneralHost, Issued, host_text, issue_ca, issue_server, parse_host, sans_of

#: `tls renew` without `--force` re-issues only when the certificate expires within this window.
RENEW_WINDOW = dt.timedelta(days=30)


class TlsStoreError(RuntimeError):
    """TLS files missing or inconsistent; the message says which command fixes it."""


@dataclass(frozen=True)
class TlsFiles:
    dir: Path

    @classmethod
    def in_data(cls, data: Path) -> TlsFiles:
        return cls(data / "tls")

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.dir / "server.key"

    def has_server(self) -> bool:
        return self.server_cert.is_file() and self.server_key.is_file()


@dataclass(frozen=True)
class TlsState:
    files: TlsFiles
    ca: Issued
    server: Issued

    @property
    def hosts(self) -> list[GeneralHost]:
        return sans_of(self.server.certificate)


@dataclass(frozen=True)
class RenewResult:
    state: TlsState
    renewed: bool
    previous_not_after: dt.datetime


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write to a sibling temp file created with `mode`, then rename: never a readable half-key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _save(path_cert: Path, path_key: Path, issued: Issued) -> None:
    _write(path_key, _key_pem(issued.key), 0o600)
    _write(path_cert, issued.certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _load_pair(cert_path: Path, key_path: Path, fix: str) -> Issued:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise TlsStoreError(f"cannot read {cert_path.name}/{key_path.name} in {cert_path.parent}: {exc}; {fix}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise TlsStoreError(f"{key_path} does not match {cert_path}; {fix}")
    return Issued(key, cert)


def load_tls(data: Path) -> TlsState:
    files = TlsFiles.in_data(data)
    if not files.ca_key.is_file():
        raise TlsStoreError(f"no CA in {files.dir}: run `authgate tls init --host NAME` first")
    ca = _load_pair(files.ca_cert, files.ca_key, "run `authgate tls init --new-ca --host NAME`")
    server = _load_pair(files.server_cert, files.server_key, "run `authgate tls renew --force`")
    return TlsState(files, ca, server)


def init_tls(data: Path, hosts: list[str], new_ca: bool = False) -> tuple[TlsState, bool]:
    """Issue a server certificate for `hosts`, creating the CA unless one exists (clients that trust it
    keep working). Returns the state and whether a new CA was made."""
    parsed = [parse_host(h) for h in hosts]
    files = TlsFiles.in_data(data)
    files.dir.mkdir(parents=True, exist_ok=True)
    created = new_ca or not files.ca_key.is_file()
    if created:
        ca = issue_ca(host_text(parsed[0]) if parsed else "authgate")
        _save(files.ca_cert, files.ca_key, ca)
    else:
        ca = _load_pair(files.ca_cert, files.ca_key, "run `authgate tls init --new-ca --host NAME`")
    server = issue_server(ca, parsed)
    _save(files.server_cert, files.server_key, server)
    return TlsState(files, ca, server), created


def renew_tls(data: Path, force: bool = False, window: dt.timedelta = RENEW_WINDOW,
              now: dt.datetime | None = None) -> RenewResult:
    """Re-issue the server certificate from the same CA for the same hosts when it is due (or forced)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    files = TlsFiles.in_data(data)
    if not files.ca_key.is_file():
        raise TlsStoreError(f"no CA in {files.dir}: run `authgate tls init --host NAME` first")
    ca = _load_pair(files.ca_cert, files.ca_key, "run `authgate tls init --new-ca --host NAME`")
    try:
        old = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsStoreError(f"cannot read {files.server_cert}: {exc}; run `authgate tls init --host NAME`") from exc
    previous = old.not_valid_after_utc
    if not force and previous - now > window:
        server = _load_pair(files.server_cert, files.server_key, "run `authgate tls renew --force`")
        return RenewResult(TlsState(files, ca, server), False, previous)
    hosts = sans_of(old)
    server = issue_server(ca, hosts, now=now.replace(microsecond=0))
    _save(files.server_cert, files.server_key, server)
    return RenewResult(TlsState(files, ca, server), True, previous)
