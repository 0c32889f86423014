"""What authgate seals for later (a provider's refresh token, the console's sign-in cookie) opens on
every replica that has the data dir's seal key, and what earlier versions sealed still opens."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

from cryptography.fernet import Fernet

from authgate.identity.sealed import Sealer


def test_a_secret_sealed_on_one_replica_opens_on_another_with_the_copied_seal_key(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "keys", tmp_path / "b" / "keys"
    sealed = Sealer(first).seal("provider-refresh-token")
    assert stat.S_IMODE((first / "seal.key").stat().st_mode) == 0o600
    second.mkdir(parents=True)
    shutil.copy2(first / "seal.key", second / "seal.key")  # as docs/scale-out.md says: one file, copied once
    assert Sealer(second).unseal(sealed) == "provider-refresh-token"
    assert Sealer(tmp_path / "c" / "keys").unseal(sealed) is None, "another seal key opens nothing"


def test_what_the_old_identity_key_sealed_still_opens_and_nothing_new_uses_it(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    legacy = Fernet.generate_key()
    (keys / "identity.key").write_bytes(legacy)
    old = Fernet(legacy).encrypt(b"sealed-before-the-upgrade").decode()
    sealer = Sealer(keys)
    assert sealer.unseal(old) == "sealed-before-the-upgrade"
    new = sealer.seal("sealed-after")
    assert Fernet((keys / "seal.key").read_bytes().strip()).decrypt(new.encode()) == b"sealed-after"
