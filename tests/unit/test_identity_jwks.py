"""Which published key may verify which algorithm: a token header never picks a key of another type."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authgate.identity.jwks import fits

EC_KEY = jwt.PyJWK(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True))
RSA_KEY = jwt.PyJWK(jwt.algorithms.RSAAlgorithm.to_jwk(
    rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), as_dict=True))
RSA_NAMED = jwt.PyJWK({**jwt.algorithms.RSAAlgorithm.to_jwk(
    rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(), as_dict=True), "alg": "PS256"})


@pytest.mark.parametrize(("key", "alg", "expected"), [
    (EC_KEY, "ES256", True),
    (EC_KEY, "RS256", False),
    (RSA_KEY, "RS256", True),
    (RSA_KEY, "PS384", True),
    (RSA_KEY, "ES256", False),
    (RSA_NAMED, "PS256", True),
    (RSA_NAMED, "RS256", False),
])
def test_a_key_verifies_only_its_own_kind(key: jwt.PyJWK, alg: str, expected: bool) -> None:
    assert fits(key, alg) is expected
