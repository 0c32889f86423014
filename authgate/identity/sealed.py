"""Seal secrets authgate must use again later (an OpenID provider's refresh token): Fernet with a
key kept in the data dir's `keys/` (0600), never in the database, so a database dump or backup
alone does not hand out sessions at the provider."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class Sealer:
    def __init__(self, key_file: Path) -> None:
        self.key_file = key_file
        self._fernet: Fernet | None = None

    def _key(self) -> Fernet:
        if self._fernet is None:
            if not self.key_file.exists():
                self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                try:
                    fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass  # another process made it first: use theirs
                else:
                    with os.fdopen(fd, "wb") as out:
                        out.write(Fernet.generate_key())
            self._fernet = Fernet(self.key_file.read_bytes().strip())
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
