"""Password checks: schemes accepted, rehash of deprecated ones, the success cache, the dummy hash."""

from __future__ import annotations

import anyio
import bcrypt
from passlib.hash import sha512_crypt

from authgate.auth.passwords import PasswordVerifier, make_context


def test_verify_accepts_bcrypt_2y_argon2_and_upgrades_deprecated() -> None:
    verifier = PasswordVerifier(make_context(bcrypt_rounds=4))

    async def main() -> None:
        htpasswd = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
        assert await verifier.verify("a", htpasswd, "pw") == (True, None)
        argon = verifier.context.handler("argon2").hash("pw")
        assert (await verifier.verify("b", argon, "pw"))[0]
        old = sha512_crypt.hash("pw", rounds=1000)
        ok, new_hash = await verifier.verify("c", old, "pw")
        assert ok and new_hash is not None and new_hash.startswith("$2b$")
        assert await verifier.verify("c", old, "wrong") == (False, None)
        assert await verifier.verify("d", None, "pw") == (False, None)
        assert await verifier.verify("e", "not-a-hash", "pw") == (False, None)

    anyio.run(main)


def test_cache_hits_only_the_same_password_and_stored_hash() -> None:
    verifier = PasswordVerifier(make_context(bcrypt_rounds=4))
    calls: list[str] = []
    original = verifier.context.verify_and_update

    def counting(secret: str, hashed: str) -> tuple[bool, str | None]:
        calls.append(secret)
        result: tuple[bool, str | None] = original(secret, hashed)
        return result

    verifier.context.verify_and_update = counting  # type: ignore[method-assign]

    async def main() -> None:
        stored = verifier.hash("pw")
        assert (await verifier.verify("alice", stored, "pw"))[0]
        assert (await verifier.verify("alice", stored, "pw"))[0]
        assert len(calls) == 1, "the second success came from the cache"
        assert not (await verifier.verify("alice", stored, "other"))[0]
        changed = verifier.hash("pw")  # same password, new hash after `user passwd`
        assert (await verifier.verify("alice", changed, "pw"))[0]
        assert len(calls) == 3, "a changed stored hash must miss the cache"

    anyio.run(main)
    assert all(b"pw" not in key for key in verifier._cache)


def test_known_is_the_answer_verify_would_give_from_memory() -> None:
    """The cached login asks `known` once instead of `remembered` then `verify`: same answers."""
    verifier = PasswordVerifier(make_context(bcrypt_rounds=4))

    async def main() -> None:
        stored = verifier.hash("pw")
        assert verifier.known("alice", stored, "pw") is None, "never checked: a hash is needed"
        assert verifier.known("alice", stored, "bad") is None
        assert (await verifier.verify("alice", stored, "pw"))[0]
        assert not (await verifier.verify("alice", stored, "bad"))[0]
        assert not (await verifier.verify("ghost", None, "pw"))[0]
        assert verifier.known("alice", stored, "pw") is True
        assert verifier.known("alice", stored, "bad") is False
        assert verifier.known("ghost", None, "pw") is False
        assert verifier.known("alice", verifier.hash("pw"), "pw") is None, "a new stored hash misses"

    anyio.run(main)


def test_unknown_users_pay_a_dummy_hash() -> None:
    verifier = PasswordVerifier(make_context(bcrypt_rounds=4))
    calls: list[str] = []
    original = verifier.context.dummy_verify

    def counting() -> bool:
        calls.append("dummy")
        result: bool = original()
        return result

    verifier.context.dummy_verify = counting  # type: ignore[method-assign]
    assert anyio.run(verifier.verify, "ghost", None, "pw") == (False, None)
    assert calls == ["dummy"]


def test_concurrent_checks_of_one_credential_cost_one_hash() -> None:
    """When the cached success expires under load, the requests carrying the same credentials wait
    for one bcrypt rather than each paying for it."""
    verifier = PasswordVerifier(make_context(bcrypt_rounds=4))
    calls: list[str] = []
    original = verifier.context.verify_and_update

    def counting(secret: str, hashed: str) -> tuple[bool, str | None]:
        calls.append(secret)
        result: tuple[bool, str | None] = original(secret, hashed)
        return result

    verifier.context.verify_and_update = counting  # type: ignore[method-assign]
    stored = verifier.hash("pw")

    async def main() -> list[tuple[bool, str | None]]:
        results: list[tuple[bool, str | None]] = []

        async def one(password: str) -> None:
            results.append(await verifier.verify("a", stored, password))

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(one, "pw")
            group.start_soon(one, "wrong")
        return results

    results = anyio.run(main)
    assert sorted(results) == [(False, None)] + [(True, None)] * 8
    assert sorted(calls) == ["pw", "wrong"]
