"""What `authgate serve` does with TLS: pick up `tls init`'s certificate from the data dir, point the
token realm at the HTTPS address the certificate names, and warn before the certificate expires."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509

from authgate.settings import Settings, SettingsError
from authgate.tls.certs import host_text, sans_of
from authgate.tls.store import RENEW_WINDOW, TlsFiles

_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def https_url(settings: Settings, hosts: list[str]) -> str:
    """The listening address when the certificate names it, else the certificate's first host:
    a realm clients on other hosts can reach and verify."""
    if settings.host not in _WILDCARD_HOSTS and (settings.host in hosts or not hosts):
        host = settings.host
    else:
        host = hosts[0] if hosts else "localhost"
    return f"https://{_url_host(host)}:{settings.port}"


def with_data_dir_tls(settings: Settings) -> Settings:
    """Settings serving HTTPS with `<data>/tls/server.crt` when no certificate is configured and
    `authgate tls init` made one; otherwise `settings` unchanged."""
    files = TlsFiles.in_data(settings.data)
    if settings.tls_cert or not files.has_server():
        return settings
    try:
        cert = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {files.server_cert}: {exc}; run `authgate tls renew --force`") from exc
    hosts = [host_text(h) for h in sans_of(cert)]
    return dataclasses.replace(
        settings,
        tls_cert=files.server_cert,
        tls_key=files.server_key,
        public_url=settings.public_url or https_url(settings, hosts),
    )


def expiry_warning(cert_path: Path, now: dt.datetime | None = None) -> str | None:
    """A message when the certificate has expired or expires within the renewal window."""
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return None  # uvicorn reports an unreadable certificate itself, with the path
    left = cert.not_valid_after_utc - now
    if left > RENEW_WINDOW:
        return None
    when = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    state = "expired" if left.total_seconds() <= 0 else "expires"
    return (f"TLS certificate {cert_path} {state} {when}: clients will refuse it. "
            "Run `authgate tls renew` (for a tls init certificate) and restart authgate.")
