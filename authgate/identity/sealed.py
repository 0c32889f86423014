"""Seal secrets authgate must use again later (an OpenID provider's refresh token, the console's
sign-in flow): Fernet with the data dir's seal key (`keys/seal.key`, 0600), never in the database,
so a database dump or backup alone does not hand out sessions at the provider.

One key for everything sealed: the signing keys use it too (`auth/key_store.py`), so copying that
one file to each replica is all it takes for any replica to open what another sealed. Earlier
versions sealed these secrets with `keys/identity.key`: while that file exists it still opens what
it sealed; nothing new is sealed with it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from authgate.auth.key_store import SEAL_FILE
from authgate.auth.keys import check_private, write_private

#: The key of earlier versions, read (never written) so that what it sealed still opens.
LEGACY_FILE = "identity.key"


class Sealer:
    def __init__(self, keys_directory: Path) -> None:
        self.key_file = keys_directory / SEAL_FILE
        self.legacy_file = keys_directory / LEGACY_FILE
        self._fernet: MultiFernet | None = None

    def _key(self) -> MultiFernet:
        if self._fernet is None:
            if not self.key_file.exists():  # `serve` makes it first; a tool or test may come before
                self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    write_private(self.key_file, Fernet.generate_key())
                except FileExistsError:
                    pass  # another process made it first: use theirs
            check_private(self.key_file)
            keys = [Fernet(self.key_file.read_bytes().strip())]
            if self.legacy_file.exists():
                keys.append(Fernet(self.legacy_file.read_bytes().strip()))
            self._fernet = MultiFernet(keys)
        return self._fernet

    def seal(self, secret: str) -> str:
        return self._key().encrypt(secret.encode()).decode()

    def unseal(self, sealed: str, max_age: int | None = None) -> str | None:
        """None when the key changed (data dir restored without keys/): the person logs in again;
        also when it was not sealed here (forged, altered) or was sealed more than `max_age` seconds ago."""
        try:
            return self._key().decrypt(sealed.encode(), ttl=max_age).decode()
        except (InvalidToken, UnicodeEncodeError):
            return None
