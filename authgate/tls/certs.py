"""Certificate issuing: an ECDSA P-256 CA and server certificates whose SANs hold every host given.

Pure functions over keys and certificates (no files), so the lifetimes and extensions are unit-tested.
Go's crypto/x509 (docker, containerd, skopeo) ignores the CN, so every host goes into the SANs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = dt.timedelta(days=3650)
SERVER_LIFETIME = dt.timedelta(days=365)
#: Certificates start a little in the past so a client whose clock lags does not see "not yet valid".
BACKDATE = dt.timedelta(minutes=5)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

GeneralHost = x509.DNSName | x509.IPAddress


class HostError(ValueError):
    """A `--host` that is neither an IP address nor a DNS name."""


@dataclass(frozen=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def parse_host(raw: str) -> GeneralHost:
    """An IP address (v4 or v6, brackets allowed) or a DNS name (a leading `*.` wildcard allowed)."""
    text = raw.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text.removeprefix("[").removesuffix("]")))
    except ValueError:
        pass
    name = text.lower().rstrip(".")
    labels = name.split(".")
    if labels and labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise HostError(f"{raw!r} is not an IP address or a DNS name (letters, digits, '-' and '.')")
    return x509.DNSName(name)


def host_text(host: GeneralHost) -> str:
    return str(host.value)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def issue_ca(label: str, now: dt.datetime | None = None) -> Issued:
    """A CA that may sign server certificates only (path length 0), valid ~10 years."""
    now = now or _now()
    key = _new_key()
    # A random suffix keeps two installations' CAs apart in a client's trust store.
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "authgate"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"authgate CA {label[:40]} {secrets.token_hex(4)}"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(key, cert)


def issue_server(ca: Issued, hosts: list[GeneralHost], now: dt.datetime | None = None) -> Issued:
    """A TLS server certificate for `hosts`, ~1 year, never outliving the CA that signs it."""
    if not hosts:
        raise HostError("at least one --host is needed: the name or address clients use to reach authgate")
    now = now or _now()
    key = _new_key()
    not_after = min(now + SERVER_LIFETIME, ca.certificate.not_valid_after_utc)
    if not_after <= now:
        raise HostError("the CA has expired: run `authgate tls init --new-ca` and trust the new CA on clients")
    unique = list(dict.fromkeys(hosts))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_text(unique[0])[:64])]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(unique), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(key, cert)


def sans_of(cert: x509.Certificate) -> list[GeneralHost]:
    """The DNS names and IP addresses a certificate is valid for, in issuing order."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [name for name in ext if isinstance(name, (x509.DNSName, x509.IPAddress))]
