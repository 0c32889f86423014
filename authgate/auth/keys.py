"""Token signing keys: what a key is, its certificate and `kid`, and the ring of keys in use.

Each key has a self-signed certificate, because distribution verifies the token's `x5c` header
against `auth.token.rootcertbundle` first (2.8 and 3.x alike), and a libtrust-format `kid`, which 2.8
needs for `kid`-only tokens and which a distribution 3 `jwks` file can carry verbatim
(docs/client-compat.md §3). The newest active key signs; every key verifies, so a rotation can overlap.
Where the keys are kept (the database, sealed) is authgate.auth.key_store; the file functions here
serve keys an earlier version kept in `<data>/keys` (imported once) and tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

Algorithm = Literal["ES256", "RS256"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

#: Certificate lifetime. With `x5c` the registry enforces the certificate's validity, so its expiry
#: is an outage: `keys rotate` well before, and `authgate serve` warns 30 days ahead.
CERT_LIFETIME = timedelta(days=730)
EXPIRY_WARNING = timedelta(days=30)
_KEY_FILE_RE = re.compile(r"signing-(\d+)\.key")


class SigningKeyError(Exception):
    """A signing key that cannot be used safely; the message says how to fix it."""


def libtrust_key_id(public_key: PublicKey) -> str:
    """libtrust `keyIDFromCryptoKey`: base32(sha256(DER SubjectPublicKeyInfo)[:30]) in 12 groups of 4."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass(frozen=True)
class SigningKey:
    index: int
    algorithm: Algorithm
    private_key: PrivateKey
    certificate: x509.Certificate
    kid: str

    @property
    def public_key(self) -> PublicKey:
        return self.private_key.public_key()

    @cached_property
    def x5c(self) -> list[str]:
        """Standard base64 DER, as the JOSE `x5c` header wants (not base64url); computed once, as
        every issued token carries it."""
        return [base64.b64encode(self.certificate.public_bytes(serialization.Encoding.DER)).decode()]

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def jwk(self) -> dict[str, Any]:
        """The public JWK, with the libtrust `kid` the tokens carry (for distribution 3's `jwks` file)."""
        public = self.public_key
        text = ECAlgorithm.to_jwk(public) if isinstance(public, ec.EllipticCurvePublicKey) else RSAAlgorithm.to_jwk(public)
        jwk: dict[str, Any] = json.loads(text)
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk

    def __repr__(self) -> str:
        return f"SigningKey(index={self.index}, algorithm={self.algorithm!r}, kid={self.kid!r})"


def _generate_private_key(algorithm: Algorithm) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _algorithm_of(private_key: PrivateKey) -> Algorithm:
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise SigningKeyError(f"EC signing keys must use P-256 (ES256), found {private_key.curve.name}")
        return "ES256"
    return "RS256"


def _self_signed(private_key: PrivateKey, kid: str, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"authgate token signing {kid[:14]}")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(private_key, hashes.SHA256())
    )


def write_private(path: Path, data: bytes) -> None:
    """Create with 0600 from the start (no window where the key is readable by others)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(
            f"signing key {path} is readable by other users (mode {stat.S_IMODE(mode):o}); "
            f"run `chmod 600 {path}` and start again"
        )


def load_file_key(directory: Path, index: int) -> SigningKey:
    key_path = directory / f"signing-{index}.key"
    check_private(key_path)
    return key_from_pem(index, key_path.read_bytes(), (directory / f"signing-{index}.crt").read_bytes(), str(key_path))


def generate_key(algorithm: Algorithm, index: int, now: datetime | None = None) -> SigningKey:
    """A new key and its self-signed certificate, in memory."""
    private_key = _generate_private_key(algorithm)
    kid = libtrust_key_id(private_key.public_key())
    certificate = _self_signed(private_key, kid, now or datetime.now(timezone.utc))
    return SigningKey(index, algorithm, private_key, certificate, kid)


def private_pem(key: SigningKey) -> bytes:
    return key.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def key_from_pem(index: int, pem: bytes, certificate_pem: bytes, where: str) -> SigningKey:
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise SigningKeyError(f"{where}: only EC P-256 and RSA keys are accepted by distribution 2.8")
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    return SigningKey(index, _algorithm_of(loaded), loaded, certificate, libtrust_key_id(loaded.public_key()))


def file_key_indexes(directory: Path) -> list[int]:
    """The `signing-N.key` files of `directory` (keys kept on disk before they moved to the database)."""
    if not directory.is_dir():
        return []
    return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _KEY_FILE_RE.fullmatch(p.name)))


def create_key(directory: Path, algorithm: Algorithm, now: datetime | None = None) -> SigningKey:
    """A new key file with the next index (a ring of files: tests and the registry side of a deployment)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    key = generate_key(algorithm, max(file_key_indexes(directory), default=0) + 1, now)
    (directory / f"signing-{key.index}.crt").write_bytes(key.certificate.public_bytes(serialization.Encoding.PEM))
    write_private(directory / f"signing-{key.index}.key", private_pem(key))
    return key


class KeyRing:
    """Every key; the newest active one of the configured algorithm signs, every one verifies.

    The ring of a running process is updated in place (`update`) when another process rotates the
    keys (authgate.auth.key_store): the token service and everything holding the ring see the change.
    """

    def __init__(self, keys: list[SigningKey], algorithm: Algorithm, staged: frozenset[str] = frozenset()) -> None:
        candidates = [k for k in keys if k.algorithm == algorithm and k.kid not in staged]
        if not candidates:
            raise SigningKeyError(f"no active {algorithm} signing key; run `authgate keys rotate` to create one")
        self.algorithm = algorithm
        self.keys = sorted(keys, key=lambda k: k.index)
        #: Keys that verify but do not sign yet: the registries checking tokens must trust them first.
        self.staged = staged
        self.signer = max(candidates, key=lambda k: k.index)
        self.by_kid = {k.kid: k for k in self.keys}

    def update(self, other: KeyRing) -> None:
        """Take `other`'s keys. The verifying keys first, so no moment signs with a key that does not verify."""
        self.by_kid = other.by_kid
        self.keys, self.staged = other.keys, other.staged
        self.signer = other.signer

    @classmethod
    def load(cls, directory: Path, algorithm: Algorithm, create: bool = True) -> KeyRing:
        """Load `directory`, creating the first key (of `algorithm`) when there is none."""
        keys = [load_file_key(directory, i) for i in file_key_indexes(directory)]
        if create and not any(k.algorithm == algorithm for k in keys):
            keys.append(create_key(directory, algorithm))
        return cls(keys, algorithm)

    def certificate_bundle(self) -> str:
        """PEM of every certificate: the registry's `rootcertbundle` must trust old and new during a rotation."""
        return "".join(k.certificate_pem() for k in self.keys)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def expiring(self, now: datetime | None = None, within: timedelta = EXPIRY_WARNING) -> list[SigningKey]:
        moment = now or datetime.now(timezone.utc)
        return [k for k in self.keys if k.not_after - moment < within]


def keys_dir(data: Path) -> Path:
    return data / "keys"


def remove_key(directory: Path, kid: str) -> SigningKey:
    """Delete a key by `kid`; refuses the only remaining key."""
    keys = [load_file_key(directory, i) for i in file_key_indexes(directory)]
    match = [k for k in keys if k.kid == kid]
    if not match:
        raise SigningKeyError(f"no signing key with kid {kid!r} (see `authgate keys list`)")
    if len(keys) == 1:
        raise SigningKeyError("refusing to remove the only signing key")
    key = match[0]
    (directory / f"signing-{key.index}.key").unlink()
    (directory / f"signing-{key.index}.crt").unlink()
    return key
