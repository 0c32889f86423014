"""Does what `authgate serve` is about to do with HTTPS make sense? Checked at start, before listening.

`tls init --host 10.250.77.1` then a plain `authgate serve` used to listen on 127.0.0.1 with a
certificate for 10.250.77.1 and a token realm at https://10.250.77.1:5000/token: the other host got
"connection refused", local docker failed on the realm, and nothing said why. A certificate that
names no address authgate listens on cannot serve anyone, so that start is refused (for `tls init`'s
own certificate; a configured `tls_cert` only warns, it may sit behind a proxy we cannot see);
a realm host the certificate does not name is warned about.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cryptography import x509

from authgate.settings import Settings
from authgate.tls.certs import host_text, sans_of

_WILDCARD = ("0.0.0.0", "::", "")


@dataclass
class ListenCheck:
    refusal: str | None = None
    warnings: list[str] = field(default_factory=list)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _covers(names: list[str], host: str) -> bool:
    host = host.strip("[]").lower()
    for name in names:
        if name == host or (name.startswith("*.") and host.endswith(name[1:]) and host.count(".") == name.count(".")):
            return True
    return False


def check_listening(settings: Settings, from_tls_init: bool) -> ListenCheck:
    """What is wrong with serving `settings.tls_cert` on `settings.host` with realm `settings.realm`."""
    result = ListenCheck()
    if settings.tls_cert is None:
        return result
    try:
        names = [host_text(h).lower() for h in sans_of(x509.load_pem_x509_certificate(settings.tls_cert.read_bytes()))]
    except (OSError, ValueError):
        return result  # unreadable: uvicorn names the file itself
    if not names:
        return result
    listed = ", ".join(names)
    host = settings.host
    if host not in _WILDCARD and not _covers(names, host) and not (_is_loopback(host) and any(map(_is_loopback, names))):
        if _is_loopback(host):
            message = (f"the certificate {settings.tls_cert} names {listed}, but authgate listens on {host} only: "
                       f"other hosts cannot connect and local clients get a certificate for other names. Listen "
                       f"where clients connect: `authgate serve --host 0.0.0.0` (or --host {names[0]}; "
                       "AUTHGATE_HOST in a config or container)")
        else:
            message = (f"the certificate {settings.tls_cert} names {listed}, not {host}, the address authgate "
                       f"listens on: clients connecting to {host} will refuse it. Listen on 0.0.0.0 or one of "
                       f"those addresses, or add {host} with `authgate tls init --host {host} --host …`")
        if from_tls_init:
            result.refusal = message
        else:
            result.warnings.append(message)
    realm_host = urlsplit(settings.realm).hostname or ""
    if settings.public_url and realm_host and not _covers(names, realm_host):
        result.warnings.append(
            f"the token realm {settings.realm} names {realm_host}, which the certificate {settings.tls_cert} does "
            f"not cover ({listed}): docker will refuse the realm unless something else serves HTTPS for "
            f"{realm_host}. Fix public_url, or add the name with `authgate tls init --host {realm_host} --host …`")
    return result
