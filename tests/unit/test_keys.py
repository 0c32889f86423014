"""Signing keys: libtrust key ids, file modes, rotation, JWKS and the certificate bundle."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from authgate.auth.keys import KeyRing, SigningKeyError, create_key, libtrust_key_id, remove_key


def _b64int(text: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


def test_libtrust_kid_matches_distribution_jwt_doc_vector() -> None:
    # distribution docs/content/spec/auth/jwt.md (docs/client-compat.md §3)
    key = ec.EllipticCurvePublicNumbers(
        _b64int("m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q"),
        _b64int("dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc"),
        ec.SECP256R1(),
    ).public_key()
    assert libtrust_key_id(key) == "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6"


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_first_load_creates_private_key_0600_with_certificate(tmp_path: Path, algorithm: str) -> None:
    ring = KeyRing.load(tmp_path / "keys", algorithm)  # type: ignore[arg-type]
    key_file = tmp_path / "keys" / "signing-1.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert ring.signer.algorithm == algorithm
    assert ring.signer.certificate.public_key().public_numbers() == ring.signer.public_key.public_numbers()
    again = KeyRing.load(tmp_path / "keys", algorithm)  # type: ignore[arg-type]
    assert again.signer.kid == ring.signer.kid, "a second start must reuse the key, not make a new one"


def test_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    KeyRing.load(tmp_path, "ES256")
    os.chmod(tmp_path / "signing-1.key", 0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        KeyRing.load(tmp_path, "ES256")


def test_rotation_signs_with_the_newest_and_keeps_old_keys_verifying(tmp_path: Path) -> None:
    old = KeyRing.load(tmp_path, "ES256").signer
    new = create_key(tmp_path, "ES256")
    ring = KeyRing.load(tmp_path, "ES256")
    assert ring.signer.kid == new.kid
    assert set(ring.by_kid) == {old.kid, new.kid}
    bundle = x509.load_pem_x509_certificates(ring.certificate_bundle().encode())
    assert len(bundle) == 2
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old.kid, new.kid}
    remove_key(tmp_path, old.kid)
    assert set(KeyRing.load(tmp_path, "ES256").by_kid) == {new.kid}
    with pytest.raises(SigningKeyError, match="only"):
        remove_key(tmp_path, new.kid)


def test_switching_algorithm_adds_a_key_of_the_new_kind(tmp_path: Path) -> None:
    es = KeyRing.load(tmp_path, "ES256").signer
    ring = KeyRing.load(tmp_path, "RS256")
    assert ring.signer.algorithm == "RS256"
    assert es.kid in ring.by_kid


def test_expiring_certificates_are_reported(tmp_path: Path) -> None:
    create_key(tmp_path, "ES256", now=datetime.now(timezone.utc) - timedelta(days=720))
    ring = KeyRing.load(tmp_path, "ES256")
    assert [k.index for k in ring.expiring()] == [1]
    create_key(tmp_path, "ES256")
    assert [k.index for k in KeyRing.load(tmp_path, "ES256").expiring()] == [1]


def test_jwk_has_public_parts_only(tmp_path: Path) -> None:
    jwk = KeyRing.load(tmp_path, "ES256").jwks()["keys"][0]
    assert jwk["kty"] == "EC" and jwk["alg"] == "ES256" and "d" not in jwk
